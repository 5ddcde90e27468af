{{/* The roles, each with its Deployment, Service, PDB and HPA. */}}
{{- define "logengine.roles" -}}
{{- list "producer" "consumer" "gateway" | toJson -}}
{{- end -}}

{{- define "logengine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; each role's objects add "-<role>" (so at most 54 characters). */}}
{{- define "logengine.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one role's objects; call with (dict "root" $ "role" "producer"). */}}
{{- define "logengine.roleName" -}}
{{- printf "%s-%s" (include "logengine.fullname" .root) .role -}}
{{- end -}}

{{- define "logengine.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "logengine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: logengine
{{- end -}}

{{- define "logengine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logengine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one role's objects; call with (dict "root" $ "role" "producer"). */}}
{{- define "logengine.roleLabels" -}}
{{ include "logengine.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "logengine.roleSelectorLabels" -}}
{{ include "logengine.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "logengine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "logengine.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "logengine.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/*
Refuses values that cannot work, so that a mistake fails the install rather
than a pod at start.
*/}}
{{- define "logengine.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.brokers -}}
{{- fail "kafka.brokers is required: the seed brokers of an external Kafka cluster (the embedded broker cannot be shared by pods)" -}}
{{- end -}}
{{- if not (kindIs "slice" $v.kafka.brokers) -}}
{{- fail "kafka.brokers must be a list, e.g. [kafka-0.kafka:9092, kafka-1.kafka:9092]" -}}
{{- end -}}
{{- range $v.kafka.brokers -}}
{{- if eq (lower (toString .)) "embedded" -}}
{{- fail "kafka.brokers: the embedded broker keeps records in one process's memory and cannot be used in Kubernetes; give the external cluster's brokers" -}}
{{- end -}}
{{- end -}}
{{- if and (not $v.postgres.url) (not $v.postgres.urlSecret.name) -}}
{{- fail "postgres.url or postgres.urlSecret.name is required (the default, 127.0.0.1, is no database in a pod)" -}}
{{- end -}}
{{- if and $v.kafka.sasl.mechanism (or (not $v.kafka.sasl.user) (not $v.kafka.sasl.passwordSecret.name)) -}}
{{- fail "kafka.sasl.mechanism needs kafka.sasl.user and kafka.sasl.passwordSecret.name" -}}
{{- end -}}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.tls.enabled) -}}
{{- fail "kafka.sasl needs kafka.tls.enabled: the password would cross the network in clear" -}}
{{- end -}}
{{- if and (or $v.kafka.tls.caSecret.name $v.kafka.tls.clientCertSecret) (not $v.kafka.tls.enabled) -}}
{{- fail "kafka.tls.caSecret and kafka.tls.clientCertSecret need kafka.tls.enabled" -}}
{{- end -}}
{{- if and (or $v.redis.tls.caSecret.name $v.redis.tls.clientCertSecret) (not $v.redis.tls.enabled) -}}
{{- fail "redis.tls.caSecret and redis.tls.clientCertSecret need redis.tls.enabled" -}}
{{- end -}}
{{- if and (not $v.redis.addr) (or $v.redis.tls.enabled $v.redis.user $v.redis.passwordSecret.name) -}}
{{- fail "redis.tls, redis.user and redis.passwordSecret need redis.addr" -}}
{{- end -}}
{{- $partitions := int $v.kafka.partitions -}}
{{- if and (not $v.consumer.autoscaling.enabled) (gt (int $v.consumer.replicas) $partitions) -}}
{{- fail (printf "consumer.replicas (%d) exceeds kafka.partitions (%d): the extra consumers would stay idle" (int $v.consumer.replicas) $partitions) -}}
{{- end -}}
{{- if and $v.consumer.autoscaling.enabled (gt (int $v.consumer.autoscaling.maxReplicas) $partitions) -}}
{{- fail (printf "consumer.autoscaling.maxReplicas (%d) exceeds kafka.partitions (%d): the extra consumers would stay idle" (int $v.consumer.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- range $role := include "logengine.roles" . | fromJsonArray -}}
{{- $a := index $v $role "autoscaling" -}}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas exceeds its maxReplicas" $role) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Secrets mounted as files, as a YAML list of {name, secret, dir, items}
(items empty: every key). The flags in logengine.args name these paths.
*/}}
{{- define "logengine.secretFiles" -}}
{{- $v := .Values -}}
{{- if $v.tls.secretName }}
- {name: tls, secret: {{ $v.tls.secretName | quote }}, dir: /etc/logengine/tls, items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]}
{{- end }}
{{- if $v.auth.keysSecret.name }}
- {name: auth-keys, secret: {{ $v.auth.keysSecret.name | quote }}, dir: /etc/logengine/auth, items: [{key: {{ $v.auth.keysSecret.key | quote }}, path: keys.yaml}]}
{{- end }}
{{- if $v.metrics.tokenSecret.name }}
- {name: metrics-token, secret: {{ $v.metrics.tokenSecret.name | quote }}, dir: /etc/logengine/metrics, items: [{key: {{ $v.metrics.tokenSecret.key | quote }}, path: token}]}
{{- end }}
{{- if $v.kafka.tls.caSecret.name }}
- {name: kafka-ca, secret: {{ $v.kafka.tls.caSecret.name | quote }}, dir: /etc/logengine/kafka-ca, items: [{key: {{ $v.kafka.tls.caSecret.key | quote }}, path: ca.crt}]}
{{- end }}
{{- if $v.kafka.tls.clientCertSecret }}
- {name: kafka-client-cert, secret: {{ $v.kafka.tls.clientCertSecret | quote }}, dir: /etc/logengine/kafka-client, items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]}
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- {name: kafka-sasl, secret: {{ $v.kafka.sasl.passwordSecret.name | quote }}, dir: /etc/logengine/kafka-sasl, items: [{key: {{ $v.kafka.sasl.passwordSecret.key | quote }}, path: password}]}
{{- end }}
{{- if $v.redis.tls.caSecret.name }}
- {name: redis-ca, secret: {{ $v.redis.tls.caSecret.name | quote }}, dir: /etc/logengine/redis-ca, items: [{key: {{ $v.redis.tls.caSecret.key | quote }}, path: ca.crt}]}
{{- end }}
{{- if $v.redis.tls.clientCertSecret }}
- {name: redis-client-cert, secret: {{ $v.redis.tls.clientCertSecret | quote }}, dir: /etc/logengine/redis-client, items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]}
{{- end }}
{{- if $v.redis.passwordSecret.name }}
- {name: redis-password, secret: {{ $v.redis.passwordSecret.name | quote }}, dir: /etc/logengine/redis-password, items: [{key: {{ $v.redis.passwordSecret.key | quote }}, path: password}]}
{{- end }}
{{- if $v.postgres.filesSecret }}
- {name: postgres-files, secret: {{ $v.postgres.filesSecret | quote }}, dir: /etc/logengine/postgres, items: []}
{{- end }}
{{- end -}}

{{/* The flags of one role; call with (dict "root" $ "role" "producer"). */}}
{{- define "logengine.args" -}}
{{- $v := .root.Values -}}
{{- $r := index $v .role -}}
- serve
- {{ printf "--role=%v" .role | quote }}
{{- /* Every interface: without API keys a host-less address binds loopback only. */}}
- {{ printf "--%s-addr=0.0.0.0:%v" .role (int $r.port) | quote }}
- {{ printf "--kafka-brokers=%v" (join "," $v.kafka.brokers) | quote }}
- {{ printf "--topic=%v" $v.kafka.topic | quote }}
- {{ printf "--dlq-topic=%v" $v.kafka.dlqTopic | quote }}
- {{ printf "--partitions=%v" (int $v.kafka.partitions) | quote }}
- {{ printf "--replication-factor=%v" (int $v.kafka.replicationFactor) | quote }}
{{- if eq .role "consumer" }}
- {{ printf "--consumer-group=%v" $v.kafka.consumerGroup | quote }}
{{- end }}
{{- if $v.kafka.tls.enabled }}
- --kafka-tls
{{- end }}
{{- if $v.kafka.tls.caSecret.name }}
- --kafka-tls-ca-file=/etc/logengine/kafka-ca/ca.crt
{{- end }}
{{- if $v.kafka.tls.clientCertSecret }}
- --kafka-tls-cert-file=/etc/logengine/kafka-client/tls.crt
- --kafka-tls-key-file=/etc/logengine/kafka-client/tls.key
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- {{ printf "--kafka-sasl-mechanism=%v" $v.kafka.sasl.mechanism | quote }}
- {{ printf "--kafka-sasl-user=%v" $v.kafka.sasl.user | quote }}
- --kafka-sasl-password-file=/etc/logengine/kafka-sasl/password
{{- end }}
{{- if and $v.postgres.url (not $v.postgres.urlSecret.name) }}
- {{ printf "--postgres-url=%v" $v.postgres.url | quote }}
{{- end }}
- {{ printf "--postgres-max-conns=%v" (int $v.postgres.maxConns) | quote }}
{{- /* Empty disables the cache (the flag's default, 127.0.0.1, is no Redis in a pod). */}}
- {{ printf "--redis-addr=%v" $v.redis.addr | quote }}
- {{ printf "--cache-prefix=%v" $v.redis.cachePrefix | quote }}
{{- if $v.redis.user }}
- {{ printf "--redis-user=%v" $v.redis.user | quote }}
{{- end }}
{{- if $v.redis.passwordSecret.name }}
- --redis-password-file=/etc/logengine/redis-password/password
{{- end }}
{{- if $v.redis.tls.enabled }}
- --redis-tls
{{- end }}
{{- if $v.redis.tls.caSecret.name }}
- --redis-tls-ca-file=/etc/logengine/redis-ca/ca.crt
{{- end }}
{{- if $v.redis.tls.clientCertSecret }}
- --redis-tls-cert-file=/etc/logengine/redis-client/tls.crt
- --redis-tls-key-file=/etc/logengine/redis-client/tls.key
{{- end }}
{{- if $v.auth.keysSecret.name }}
- --auth-keys-file=/etc/logengine/auth/keys.yaml
{{- end }}
{{- if $v.metrics.tokenSecret.name }}
- --metrics-token-file=/etc/logengine/metrics/token
{{- end }}
{{- if $v.tls.secretName }}
- --tls-cert-file=/etc/logengine/tls/tls.crt
- --tls-key-file=/etc/logengine/tls/tls.key
{{- end }}
{{- if and (eq .role "producer") $r.syslog.enabled }}
- {{ printf "--syslog-addr=0.0.0.0:%v" (int $r.syslog.port) | quote }}
{{- end }}
- {{ printf "--shutdown-timeout=%v" $v.shutdownTimeout | quote }}
- {{ printf "--log-level=%v" $v.log.level | quote }}
- {{ printf "--log-format=%v" $v.log.format | quote }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- range $r.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
