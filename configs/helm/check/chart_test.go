package check

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// TestChartFilesMatchRepo keeps one source of truth: the chart cannot read
// files outside its directory, so it holds copies of the alert rules and the
// dashboard, which must not drift from the ones compose and promtool use.
func TestChartFilesMatchRepo(t *testing.T) {
	for copyPath, source := range map[string]string{
		"files/alerts.yml":     "configs/alerts.yml",
		"files/logengine.json": "configs/grafana/dashboards/logengine.json",
	} {
		got := readRepoFile(t, filepath.Join("configs/helm/logengine", copyPath))
		if !bytes.Equal(got, readRepoFile(t, source)) {
			t.Errorf("configs/helm/logengine/%s differs from %s: after changing %[2]s, run\n\tcp %[2]s configs/helm/logengine/%[1]s", copyPath, source)
		}
	}
}

// TestChartLint runs helm lint's rules (those of `helm lint --strict`) on the
// chart with each example's values.
func TestChartLint(t *testing.T) {
	for _, example := range examples(t) {
		t.Run(filepath.Base(example), func(t *testing.T) {
			linter := lint.AllWithKubeVersion(chartDir, readValues(t, example, ""), namespace, kubeVersion())
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestChartRefuses checks that values which cannot work fail the install
// with a message that says what to set.
func TestChartRefuses(t *testing.T) {
	minimal := filepath.Join(chartDir, "examples/minimal.yaml")
	for _, tc := range []struct {
		name, file, overrides, want string
	}{
		{"default values alone", "", "", "kafka.brokers is required"},
		{"embedded broker", minimal, "kafka: {brokers: [embedded]}", "embedded broker"},
		{"no database", "", "kafka: {brokers: [kafka:9092]}", "postgres.url or postgres.urlSecret.name is required"},
		{"sasl in clear", minimal, "kafka: {sasl: {mechanism: PLAIN, user: u, passwordSecret: {name: s}}}", "kafka.sasl needs kafka.tls.enabled"},
		{"sasl without password", minimal, "kafka: {tls: {enabled: true}, sasl: {mechanism: PLAIN, user: u}}", "needs kafka.sasl.user and kafka.sasl.passwordSecret.name"},
		{"more consumers than partitions", minimal, "consumer: {replicas: 7}", "consumer.replicas (7) exceeds kafka.partitions (6)"},
		{"autoscaling past the partitions", minimal, "consumer: {autoscaling: {enabled: true, maxReplicas: 8}}", "consumer.autoscaling.maxReplicas (8) exceeds kafka.partitions (6)"},
		{"redis password without redis", minimal, "redis: {passwordSecret: {name: r}}", "need redis.addr"},
		// values.schema.json: a misspelt key would otherwise be ignored.
		{"misspelt key", minimal, "kafka: {consumerGroups: g}", "consumerGroups"},
		{"unknown SASL mechanism", minimal, "kafka: {tls: {enabled: true}, sasl: {mechanism: SCRAM, user: u, passwordSecret: {name: s}}}", "mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := render(t, readValues(t, tc.file, tc.overrides))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one saying %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestChartReplicasLeftToHPA checks that consumer.replicas, unused while the
// HPA scales the consumers, is not held against the partitions.
func TestChartReplicasLeftToHPA(t *testing.T) {
	vals := readValues(t, filepath.Join(chartDir, "examples/minimal.yaml"),
		"kafka: {partitions: 1}\nconsumer: {replicas: 2, autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 1}}")
	if _, _, err := render(t, vals); err != nil {
		t.Fatal(err)
	}
}

// TestChart renders each example and checks what a cluster would run.
func TestChart(t *testing.T) {
	help := serveHelp(t)
	flags := flagNames(help)
	if !flags["role"] || !flags["kafka-brokers"] {
		t.Fatalf("no flags found in logengine serve --help:\n%s", help)
	}
	for _, example := range examples(t) {
		t.Run(filepath.Base(example), func(t *testing.T) {
			manifest, vals, err := render(t, readValues(t, example, ""))
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, manifest)
			c := chartCheck{t: t, objs: objs, vals: vals, flags: flags, help: help, roles: []string{"producer", "consumer", "gateway"}}
			c.names()
			pods := c.deployments()
			c.services(pods)
			c.pdbs(pods)
			c.hpas(pods)
			c.secretsNamed()
			c.serviceMonitor()
			c.prometheusRule()
			c.dashboard()
		})
	}
}

// TestChartProductionExample checks that the production example turns on
// what it claims to.
func TestChartProductionExample(t *testing.T) {
	manifest, _, err := render(t, readValues(t, filepath.Join(chartDir, "examples/production.yaml"), ""))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, manifest)
	if len(objs.hpas) != 3 || len(objs.pdbs) != 3 || len(objs.serviceMonitors) != 1 || len(objs.prometheusRules) != 1 || len(objs.configMaps) != 1 {
		t.Errorf("rendered %d HPAs, %d PDBs, %d ServiceMonitors, %d PrometheusRules, %d ConfigMaps; want 3, 3, 1, 1, 1",
			len(objs.hpas), len(objs.pdbs), len(objs.serviceMonitors), len(objs.prometheusRules), len(objs.configMaps))
	}
	for _, d := range objs.deployments {
		f, err := argFlags(d.Spec.Template.Spec.Containers[0].Args)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"tls-cert-file", "auth-keys-file", "metrics-token-file", "kafka-tls", "kafka-sasl-password-file", "redis-tls", "redis-password-file"} {
			if _, ok := f[name]; !ok {
				t.Errorf("%s: --%s missing", d.Name, name)
			}
		}
		if c := d.Spec.Template.Spec.Containers[0]; c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s: probes over %s with TLS on", d.Name, c.ReadinessProbe.HTTPGet.Scheme)
		}
	}
}

func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "examples/*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	return files
}

// chartCheck holds one rendering and what it is checked against.
type chartCheck struct {
	t     *testing.T
	objs  *objects
	vals  chartutil.Values
	flags map[string]bool
	help  string
	// roles are logengine's, each of which the chart runs as its own Deployment.
	roles []string
}

func (c *chartCheck) value(path string) any {
	v, err := c.vals.PathValue(path)
	if err != nil {
		c.t.Fatalf("values %s: %v", path, err)
	}
	return v
}

func (c *chartCheck) str(path string) string {
	s, _ := c.value(path).(string)
	return s
}

// names checks that every object's name is one the API server takes and
// carries the release's labels.
func (c *chartCheck) names() {
	var metas []metav1.ObjectMeta
	for _, d := range c.objs.deployments {
		metas = append(metas, d.ObjectMeta)
	}
	for _, s := range c.objs.services {
		// A Service's name is a DNS-1035 label.
		for _, msg := range validation.IsDNS1035Label(s.Name) {
			c.t.Errorf("Service %s: %s", s.Name, msg)
		}
		metas = append(metas, s.ObjectMeta)
	}
	for _, p := range c.objs.pdbs {
		metas = append(metas, p.ObjectMeta)
	}
	for _, h := range c.objs.hpas {
		metas = append(metas, h.ObjectMeta)
	}
	for _, m := range c.objs.configMaps {
		metas = append(metas, m.ObjectMeta)
	}
	for _, m := range c.objs.serviceMonitors {
		metas = append(metas, m.ObjectMeta)
	}
	for _, m := range c.objs.prometheusRules {
		metas = append(metas, m.ObjectMeta)
	}
	for _, m := range metas {
		for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
			c.t.Errorf("name %q: %s", m.Name, msg)
		}
		if m.Labels["app.kubernetes.io/instance"] != releaseName {
			c.t.Errorf("%s: labels %v lack app.kubernetes.io/instance=%s", m.Name, m.Labels, releaseName)
		}
	}
}

// rolePods are a role's Deployment and its container's flags.
type rolePods struct {
	deployment *appsv1.Deployment
	container  corev1.Container
	flags      map[string]string
}

func (p rolePods) port(name string) (corev1.ContainerPort, bool) {
	for _, port := range p.container.Ports {
		if port.Name == name {
			return port, true
		}
	}
	return corev1.ContainerPort{}, false
}

// deployments checks each role's Deployment: one per role, running that role
// alone, with flags logengine has, its listener on every interface, the probes
// on its port, an external Kafka and one consumer group.
func (c *chartCheck) deployments() map[string]rolePods {
	t := c.t
	pods := map[string]rolePods{}
	for _, d := range c.objs.deployments {
		containers := d.Spec.Template.Spec.Containers
		if len(containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", d.Name, len(containers))
		}
		ct := containers[0]
		flags, err := argFlags(ct.Args)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		for name := range flags {
			if !c.flags[name] {
				t.Errorf("%s passes --%s, which logengine serve --help does not list", d.Name, name)
			}
		}
		role := flags["role"]
		if !slices.Contains(c.roles, role) {
			t.Fatalf("%s: --role=%q, want one of %v", d.Name, role, c.roles)
		}
		if _, dup := pods[role]; dup {
			t.Fatalf("two Deployments run --role=%s", role)
		}
		pods[role] = rolePods{deployment: d, container: ct, flags: flags}

		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not select its pods (%v): %v", d.Name, d.Spec.Selector, d.Spec.Template.Labels, err)
		}
		for _, e := range ct.Env {
			name, ok := strings.CutPrefix(e.Name, "LOGENGINE_")
			if !ok {
				continue
			}
			if flag := strings.ReplaceAll(strings.ToLower(name), "_", "-"); !c.flags[flag] && !strings.Contains(c.help, e.Name) {
				t.Errorf("%s: %s is neither a flag's variable nor one logengine serve --help names", d.Name, e.Name)
			}
		}
		c.secretFiles(d, flags)
	}
	for _, role := range c.roles {
		p, ok := pods[role]
		if !ok {
			t.Fatalf("no Deployment runs --role=%s", role)
		}
		c.rolePod(role, p)
	}
	// Every consumer pod is in the one group of the one consumer Deployment.
	if got, want := pods["consumer"].flags["consumer-group"], c.str("kafka.consumerGroup"); got != want || want == "" {
		t.Errorf("consumers' --consumer-group=%q, want the values' kafka.consumerGroup %q", got, want)
	}
	return pods
}

func (c *chartCheck) rolePod(role string, p rolePods) {
	t, name := c.t, p.deployment.Name
	http, ok := p.port("http")
	if !ok {
		t.Fatalf("%s: no container port named http", name)
	}
	if want := "0.0.0.0:" + strconv.Itoa(int(http.ContainerPort)); p.flags[role+"-addr"] != want {
		t.Errorf("%s: --%s-addr=%q, want %q (the http port on every interface)", name, role, p.flags[role+"-addr"], want)
	}
	brokers := p.flags["kafka-brokers"]
	if brokers == "" || strings.Contains(strings.ToLower(brokers), "embedded") {
		t.Errorf("%s: --kafka-brokers=%q, want the external cluster", name, brokers)
	}
	if _, ok := p.flags["postgres-url"]; !ok && !slices.ContainsFunc(p.container.Env, func(e corev1.EnvVar) bool { return e.Name == "LOGENGINE_POSTGRES_URL" }) {
		t.Errorf("%s: neither --postgres-url nor LOGENGINE_POSTGRES_URL", name)
	}
	scheme := corev1.URISchemeHTTP
	if _, ok := p.flags["tls-cert-file"]; ok {
		scheme = corev1.URISchemeHTTPS
	}
	for _, probe := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", p.container.ReadinessProbe, "/readyz"},
		{"liveness", p.container.LivenessProbe, "/healthz"},
		{"startup", p.container.StartupProbe, "/readyz"},
	} {
		if probe.probe == nil || probe.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", name, probe.kind)
			continue
		}
		g := probe.probe.HTTPGet
		if g.Path != probe.path || g.Scheme != scheme || c.containerPort(p, g.Port) != http.ContainerPort {
			t.Errorf("%s: %s probe %s %s on port %s, want %s %s on %d", name, probe.kind, g.Scheme, g.Path, g.Port.String(), scheme, probe.path, http.ContainerPort)
		}
		// /healthz checks each dependency for up to 2s.
		if probe.probe.TimeoutSeconds <= 2 {
			t.Errorf("%s: %s probe timeout %ds, want above /healthz's 2s", name, probe.kind, probe.probe.TimeoutSeconds)
		}
	}
	if p.container.Resources.Requests.Memory().IsZero() || p.container.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory request and limit", name)
	}
	if sc := p.container.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root file system not read-only", name)
	}
	// SIGTERM's drain (--shutdown-timeout) and the preStop pause must end before SIGKILL.
	d, err := time.ParseDuration(p.flags["shutdown-timeout"])
	if err != nil {
		t.Fatalf("%s: --shutdown-timeout: %v", name, err)
	}
	drain := d.Seconds()
	var pause int64
	if ls := p.container.Lifecycle; ls != nil && ls.PreStop != nil && ls.PreStop.Sleep != nil {
		pause = ls.PreStop.Sleep.Seconds
	}
	if grace := p.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds; grace == nil || float64(*grace) <= drain+float64(pause) {
		t.Errorf("%s: terminationGracePeriodSeconds %v not above the drain (%gs) plus preStop (%ds)", name, grace, drain, pause)
	}
}

// containerPort resolves a probe's or a Service's port (a name or a number)
// to the container's port number, 0 when it names none.
func (c *chartCheck) containerPort(p rolePods, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		for _, cp := range p.container.Ports {
			if cp.ContainerPort == port.IntVal {
				return cp.ContainerPort
			}
		}
		return 0
	}
	cp, _ := p.port(port.StrVal)
	return cp.ContainerPort
}

// secretFiles checks that every --*-file flag names a file that a Secret
// volume mounts (with that key, where the volume lists its keys).
func (c *chartCheck) secretFiles(d *appsv1.Deployment, flags map[string]string) {
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for flag, path := range flags {
		if !strings.HasSuffix(flag, "-file") {
			continue
		}
		found := false
		for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
			rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
			v := volumes[m.Name]
			if !ok || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 || slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == rel }) {
				found = true
			}
		}
		if !found {
			c.t.Errorf("%s: --%s=%s is no file of a mounted Secret", d.Name, flag, path)
		}
	}
}

// services checks that each role has a Service selecting its pods alone,
// whose ports lead to the container's.
func (c *chartCheck) services(pods map[string]rolePods) {
	t := c.t
	byRole := map[string]*corev1.Service{}
	for _, s := range c.objs.services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selects nothing", s.Name)
			continue
		}
		matched := c.selected(pods, labels.SelectorFromSet(s.Spec.Selector))
		if len(matched) != 1 {
			t.Errorf("Service %s selects the pods of %v, want one role", s.Name, matched)
			continue
		}
		role := matched[0]
		byRole[role] = s
		for _, port := range s.Spec.Ports {
			target := port.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(port.Port)
			}
			cp := c.containerPort(pods[role], target)
			if cp == 0 {
				t.Errorf("Service %s port %s: target %s is no port of the %s container", s.Name, port.Name, target.String(), role)
				continue
			}
			for _, ccp := range pods[role].container.Ports {
				if ccp.ContainerPort == cp && ccp.Name == target.StrVal && ccp.Protocol != port.Protocol {
					t.Errorf("Service %s port %s: %s to a %s container port", s.Name, port.Name, port.Protocol, ccp.Protocol)
				}
			}
		}
	}
	// Producer and gateway serve the API; the consumer's Service is for scraping.
	for _, role := range c.roles {
		s, ok := byRole[role]
		if !ok {
			t.Errorf("no Service for the %s", role)
			continue
		}
		if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http" }) {
			t.Errorf("Service %s has no http port", s.Name)
		}
	}
}

// selected are the roles whose pods a selector matches.
func (c *chartCheck) selected(pods map[string]rolePods, sel labels.Selector) []string {
	var matched []string
	for _, role := range c.roles {
		if sel.Matches(labels.Set(pods[role].deployment.Spec.Template.Labels)) {
			matched = append(matched, role)
		}
	}
	return matched
}

// pdbs checks that each budget covers the pods of exactly one role, and each
// role has one.
func (c *chartCheck) pdbs(pods map[string]rolePods) {
	covered := map[string]bool{}
	for _, p := range c.objs.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() {
			c.t.Errorf("PDB %s: selector %v: %v", p.Name, p.Spec.Selector, err)
			continue
		}
		matched := c.selected(pods, sel)
		if len(matched) != 1 {
			c.t.Errorf("PDB %s covers the pods of %v, want one role", p.Name, matched)
			continue
		}
		if covered[matched[0]] {
			c.t.Errorf("two PDBs cover the %s", matched[0])
		}
		covered[matched[0]] = true
		if (p.Spec.MaxUnavailable == nil) == (p.Spec.MinAvailable == nil) {
			c.t.Errorf("PDB %s: want one of maxUnavailable and minAvailable", p.Name)
		}
	}
	for _, role := range c.roles {
		if enabled, _ := c.value(role + ".pdb.enabled").(bool); enabled && !covered[role] {
			c.t.Errorf("no PDB for the %s", role)
		}
	}
}

// hpas checks the autoscalers: each scales an existing Deployment that then
// leaves its replicas to it; producers and gateways on CPU (so their pods
// request CPU), consumers on the lag logengine exports, within the partitions.
func (c *chartCheck) hpas(pods map[string]rolePods) {
	t := c.t
	scaled := map[string]bool{}
	for _, h := range c.objs.hpas {
		ref := h.Spec.ScaleTargetRef
		var role string
		for r, p := range pods {
			if ref.Kind == "Deployment" && ref.APIVersion == "apps/v1" && ref.Name == p.deployment.Name {
				role = r
			}
		}
		if role == "" {
			t.Errorf("HPA %s scales %s %s %s, which is not rendered", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		scaled[role] = true
		p := pods[role]
		if p.deployment.Spec.Replicas != nil {
			t.Errorf("%s sets replicas while HPA %s scales it (each upgrade would reset them)", p.deployment.Name, h.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA %s: min %v, max %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if len(h.Spec.Metrics) == 0 {
			t.Errorf("HPA %s has no metric", h.Name)
		}
		for _, m := range h.Spec.Metrics {
			switch {
			case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
				if p.container.Resources.Requests.Cpu().IsZero() {
					t.Errorf("HPA %s scales on CPU utilisation but %s requests no CPU", h.Name, p.deployment.Name)
				}
			case m.Type == autoscalingv2.ExternalMetricSourceType && role == "consumer":
				c.lagMetric(h, m.External, p)
			default:
				t.Errorf("HPA %s: unexpected metric %+v for the %s", h.Name, m, role)
			}
		}
		if role == "consumer" {
			partitions, err := strconv.Atoi(p.flags["partitions"])
			if err != nil || int(h.Spec.MaxReplicas) > partitions {
				t.Errorf("HPA %s: up to %d consumers for --partitions=%q", h.Name, h.Spec.MaxReplicas, p.flags["partitions"])
			}
		}
	}
	for _, role := range c.roles {
		if enabled, _ := c.value(role + ".autoscaling.enabled").(bool); enabled != scaled[role] {
			t.Errorf("%s.autoscaling.enabled is %v, but an HPA scaling it: %v", role, enabled, scaled[role])
		}
	}
}

// lagMetric checks the consumers' External metric: the series logengine
// exports (and the alert rules use), for the consumers' topic, as scraped
// through their Service.
func (c *chartCheck) lagMetric(h *autoscalingv2.HorizontalPodAutoscaler, m *autoscalingv2.ExternalMetricSource, p rolePods) {
	t := c.t
	name := m.Metric.Name
	metrics := readRepoFile(t, "metrics/metrics.go")
	if !regexp.MustCompile(`Name:\s*"` + regexp.QuoteMeta(name) + `"`).Match(metrics) {
		t.Errorf("HPA %s scales on %q, which metrics/metrics.go does not define", h.Name, name)
	}
	if !bytes.Contains(readRepoFile(t, "configs/alerts.yml"), []byte(name)) {
		t.Errorf("HPA %s scales on %q, which configs/alerts.yml does not watch", h.Name, name)
	}
	if m.Metric.Selector == nil {
		t.Errorf("HPA %s: the lag of every topic and release", h.Name)
		return
	}
	if got := m.Metric.Selector.MatchLabels["topic"]; got != p.flags["topic"] {
		t.Errorf("HPA %s: lag of topic %q, the consumers read --topic=%q", h.Name, got, p.flags["topic"])
	}
	if svc, ok := m.Metric.Selector.MatchLabels["service"]; ok {
		found := false
		for _, s := range c.objs.services {
			if s.Name == svc && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.deployment.Spec.Template.Labels)) {
				found = true
			}
		}
		if !found {
			t.Errorf("HPA %s: service=%q is not the consumers' Service", h.Name, svc)
		}
	}
	if m.Target.Type != autoscalingv2.AverageValueMetricType || m.Target.AverageValue == nil || m.Target.AverageValue.IsZero() {
		t.Errorf("HPA %s: target %+v, want an AverageValue (lag per consumer)", h.Name, m.Target)
	}
}

// secretsNamed checks that every Secret the objects use is rendered or named
// in the values, so none is a name the chart made up.
func (c *chartCheck) secretsNamed() {
	named := map[string]bool{}
	collectStrings(map[string]any(c.vals), named)
	for _, s := range c.objs.secrets {
		named[s.Name] = true
	}
	check := func(where, name string) {
		if name == "" {
			c.t.Errorf("%s: a Secret without a name", where)
		} else if !named[name] {
			c.t.Errorf("%s uses Secret %q, which is neither rendered nor named in the values", where, name)
		}
	}
	for _, d := range c.objs.deployments {
		spec := d.Spec.Template.Spec
		for _, v := range spec.Volumes {
			if v.Secret != nil {
				check(d.Name+" volume "+v.Name, v.Secret.SecretName)
			}
		}
		for _, ref := range spec.ImagePullSecrets {
			check(d.Name+" imagePullSecrets", ref.Name)
		}
		for _, ct := range spec.Containers {
			for _, e := range ct.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					check(d.Name+" env "+e.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			for _, e := range ct.EnvFrom {
				if e.SecretRef != nil {
					check(d.Name+" envFrom", e.SecretRef.Name)
				}
			}
		}
	}
	for _, sm := range c.objs.serviceMonitors {
		for _, ep := range sm.Spec.Endpoints {
			if ep.Authorization != nil && ep.Authorization.Credentials != nil {
				check("ServiceMonitor authorization", ep.Authorization.Credentials.Name)
			}
			if tc := ep.TLSConfig; tc != nil {
				if tc.CA.Secret != nil {
					check("ServiceMonitor tlsConfig.ca", tc.CA.Secret.Name)
				}
				if tc.Cert.Secret != nil {
					check("ServiceMonitor tlsConfig.cert", tc.Cert.Secret.Name)
				}
				if tc.KeySecret != nil {
					check("ServiceMonitor tlsConfig.keySecret", tc.KeySecret.Name)
				}
			}
		}
	}
}

func collectStrings(v any, into map[string]bool) {
	switch v := v.(type) {
	case string:
		into[v] = true
	case map[string]any:
		for _, e := range v {
			collectStrings(e, into)
		}
	case chartutil.Values:
		collectStrings(map[string]any(v), into)
	case []any:
		for _, e := range v {
			collectStrings(e, into)
		}
	}
}

// serviceMonitor checks that the ServiceMonitor scrapes every role's Service
// on a port it has, the way the listeners serve /metrics.
func (c *chartCheck) serviceMonitor() {
	enabled, _ := c.value("serviceMonitor.enabled").(bool)
	if got := len(c.objs.serviceMonitors); got != map[bool]int{false: 0, true: 1}[enabled] {
		c.t.Fatalf("serviceMonitor.enabled=%v and %d ServiceMonitors", enabled, got)
	}
	for _, sm := range c.objs.serviceMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() {
			c.t.Fatalf("ServiceMonitor %s: selector: %v", sm.Name, err)
		}
		var scraped []*corev1.Service
		for _, s := range c.objs.services {
			if sel.Matches(labels.Set(s.Labels)) {
				scraped = append(scraped, s)
			}
		}
		if len(scraped) != len(c.roles) {
			c.t.Errorf("ServiceMonitor %s selects %d Services, want one per role", sm.Name, len(scraped))
		}
		wantScheme := "http"
		if c.str("tls.secretName") != "" {
			wantScheme = "https"
		}
		for _, ep := range sm.Spec.Endpoints {
			for _, s := range scraped {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					c.t.Errorf("ServiceMonitor %s: Service %s has no port %q", sm.Name, s.Name, ep.Port)
				}
			}
			if ep.Path != "/metrics" {
				c.t.Errorf("ServiceMonitor %s: path %q", sm.Name, ep.Path)
			}
			if scheme := strings.ToLower(string(ptrOr(ep.Scheme, ""))); scheme != wantScheme && !(scheme == "" && wantScheme == "http") {
				c.t.Errorf("ServiceMonitor %s: scheme %q, the listeners serve %s", sm.Name, scheme, wantScheme)
			}
			token := c.str("metrics.tokenSecret.name")
			if got := ""; token != "" {
				if ep.Authorization != nil && ep.Authorization.Credentials != nil {
					got = ep.Authorization.Credentials.Name
				}
				if got != token {
					c.t.Errorf("ServiceMonitor %s sends the token of Secret %q, /metrics wants %q's", sm.Name, got, token)
				}
			}
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// prometheusRule checks that the rules are configs/alerts.yml's, the file
// promtool tests and compose's Prometheus loads.
func (c *chartCheck) prometheusRule() {
	enabled, _ := c.value("prometheusRule.enabled").(bool)
	if got := len(c.objs.prometheusRules); got != map[bool]int{false: 0, true: 1}[enabled] {
		c.t.Fatalf("prometheusRule.enabled=%v and %d PrometheusRules", enabled, got)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(readRepoFile(c.t, "configs/alerts.yml"), &want); err != nil {
		c.t.Fatalf("configs/alerts.yml as a PrometheusRule's spec: %v", err)
	}
	if len(want.Groups) == 0 || len(want.Groups[0].Rules) == 0 {
		c.t.Fatal("configs/alerts.yml has no rules")
	}
	for _, r := range c.objs.prometheusRules {
		if !reflect.DeepEqual(r.Spec, want) {
			got, _ := yaml.Marshal(r.Spec)
			c.t.Errorf("PrometheusRule %s differs from configs/alerts.yml:\n%s", r.Name, got)
		}
	}
}

// dashboard checks the dashboard's ConfigMap: the sidecar's label, and JSON
// equal to the repository's dashboard.
func (c *chartCheck) dashboard() {
	enabled, _ := c.value("grafanaDashboard.enabled").(bool)
	if got := len(c.objs.configMaps); got != map[bool]int{false: 0, true: 1}[enabled] {
		c.t.Fatalf("grafanaDashboard.enabled=%v and %d ConfigMaps", enabled, got)
	}
	var want any
	if err := json.Unmarshal(readRepoFile(c.t, "configs/grafana/dashboards/logengine.json"), &want); err != nil {
		c.t.Fatal(err)
	}
	for _, m := range c.objs.configMaps {
		if label := c.str("grafanaDashboard.label"); m.Labels[label] != c.str("grafanaDashboard.labelValue") {
			c.t.Errorf("ConfigMap %s: labels %v, the Grafana sidecar looks for %s=%s", m.Name, m.Labels, label, c.str("grafanaDashboard.labelValue"))
		}
		if len(m.Data) != 1 {
			c.t.Errorf("ConfigMap %s holds %d files, want the dashboard", m.Name, len(m.Data))
		}
		var got any
		if err := json.Unmarshal([]byte(m.Data["logengine.json"]), &got); err != nil {
			c.t.Fatalf("ConfigMap %s: logengine.json: %v", m.Name, err)
		}
		if !reflect.DeepEqual(got, want) {
			c.t.Errorf("ConfigMap %s: the dashboard differs from configs/grafana/dashboards/logengine.json", m.Name)
		}
	}
}
