package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	composeloader "github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/logengine/logengine/configs"
	"github.com/spf13/pflag"
)

// composeProject loads compose.yaml as `docker compose [--profile p] config`
// would: schema validation, interpolation, anchors and merges, profiles.
func composeProject(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	root := obsRepoRoot()
	p, err := composeloader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "compose.yaml")}},
		Environment: types.Mapping{},
	}, func(o *composeloader.Options) {
		o.SetProjectName("logengine", true)
		o.Profiles = profiles
	})
	if err != nil {
		t.Fatalf("compose.yaml with profiles %v: %v", profiles, err)
	}
	return p
}

// The services of the stack without a profile: what `docker compose up`
// starts, unchanged by the cluster profile.
var composeDefaultServices = []string{"consumer", "gateway", "grafana", "kafka", "postgres", "producer", "prometheus", "redis"}

// composeClusterServices are the cluster profile's own services.
var composeClusterServices = []string{"cluster-consumer", "cluster-gateway", "cluster-producer",
	"kafka-1", "kafka-2", "kafka-3", "postgres-primary", "postgres-replica"}

func TestComposeDefaultStack(t *testing.T) {
	t.Parallel()
	p := composeProject(t)
	if got := p.ServiceNames(); !slices.Equal(sorted(got), composeDefaultServices) {
		t.Errorf("docker compose up starts %v, want %v", sorted(got), composeDefaultServices)
	}
	for _, name := range composeClusterServices {
		if _, ok := p.DisabledServices[name]; !ok {
			t.Errorf("%s is not disabled without the cluster profile", name)
		}
	}
	kafka := composeService(t, p, "kafka")
	if v := composeEnv(kafka, "KAFKA_CONTROLLER_QUORUM_VOTERS"); v != "1@kafka:9093" {
		t.Errorf("the single broker's voters are %q", v)
	}
	for _, name := range []string{"producer", "consumer", "gateway"} {
		s := composeService(t, p, name)
		if v := composeEnv(s, "LOGENGINE_KAFKA_BROKERS"); v != "kafka:9092" {
			t.Errorf("%s: brokers %q, want the single broker", name, v)
		}
		composeCheckLogengine(t, s)
	}
	composeCheckScalable(t, composeService(t, p, "consumer"))
}

func TestComposeClusterProfile(t *testing.T) {
	t.Parallel()
	p := composeProject(t, "cluster")
	want := sorted(append(slices.Clone(composeDefaultServices), composeClusterServices...))
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Errorf("docker compose --profile cluster up starts %v, want %v", sorted(got), want)
	}
	for _, name := range composeClusterServices {
		if s := composeService(t, p, name); !slices.Equal(s.Profiles, []string{"cluster"}) {
			t.Errorf("%s: profiles %v, want only cluster", name, s.Profiles)
		}
	}

	// Three KRaft nodes, each broker and controller, that agree on the
	// quorum, each with its own id, listener, volume and the same cluster id.
	nodes := []string{"kafka-1", "kafka-2", "kafka-3"}
	voters := composeEnv(composeService(t, p, nodes[0]), "KAFKA_CONTROLLER_QUORUM_VOTERS")
	clusterID := composeEnv(composeService(t, p, nodes[0]), "CLUSTER_ID")
	if clusterID == "" {
		t.Error("kafka-1 has no CLUSTER_ID: the nodes would format their volumes with different ids")
	}
	var wantVoters, seeds []string
	volumes := map[string]string{}
	for i, name := range nodes {
		s := composeService(t, p, name)
		id := fmt.Sprint(i + 1)
		wantVoters = append(wantVoters, id+"@"+name+":9093")
		seeds = append(seeds, name+":9092")
		checks := map[string]string{
			"KAFKA_NODE_ID":                          id,
			"KAFKA_PROCESS_ROLES":                    "broker,controller",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":         voters,
			"CLUSTER_ID":                             clusterID,
			"KAFKA_ADVERTISED_LISTENERS":             "PLAINTEXT://" + name + ":9092",
			"KAFKA_MIN_INSYNC_REPLICAS":              "2",
			"KAFKA_DEFAULT_REPLICATION_FACTOR":       "3",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
			"KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE":   "false",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":        "false",
		}
		for k, w := range checks {
			if v := composeEnv(s, k); v != w {
				t.Errorf("%s: %s=%q, want %q", name, k, v, w)
			}
		}
		dir := composeEnv(s, "KAFKA_LOG_DIRS")
		vol := ""
		for _, v := range s.Volumes {
			if v.Target == dir && v.Type == types.VolumeTypeVolume {
				vol = v.Source
			}
		}
		switch {
		case vol == "":
			t.Errorf("%s: its log dir %q is on no named volume", name, dir)
		case volumes[vol] != "":
			t.Errorf("%s shares volume %s with %s", name, vol, volumes[vol])
		default:
			volumes[vol] = name
		}
		if _, ok := p.Volumes[vol]; vol != "" && !ok {
			t.Errorf("%s: volume %s is not declared", name, vol)
		}
	}
	if got := strings.Join(wantVoters, ","); voters != got {
		t.Errorf("quorum voters %q, want %q (node id @ node : controller port)", voters, got)
	}

	// The cluster's logengine roles: every broker as a seed, the durable
	// topic settings, the primary for writes and the replica for reads.
	for _, name := range []string{"cluster-producer", "cluster-consumer", "cluster-gateway"} {
		s := composeService(t, p, name)
		if got := strings.Split(composeEnv(s, "LOGENGINE_KAFKA_BROKERS"), ","); !slices.Equal(sorted(got), seeds) {
			t.Errorf("%s: brokers %v, want %v", name, got, seeds)
		}
		if rf, isr := composeEnv(s, "LOGENGINE_REPLICATION_FACTOR"), composeEnv(s, "LOGENGINE_MIN_INSYNC_REPLICAS"); rf != "3" || isr != "2" {
			t.Errorf("%s: replication factor %q, min.insync.replicas %q; want 3 and 2", name, rf, isr)
		}
		if u := composeEnv(s, "LOGENGINE_POSTGRES_URL"); !strings.Contains(u, "@postgres-primary:5432/") {
			t.Errorf("%s: writes to %q, want the primary", name, u)
		}
		for _, dep := range append(slices.Clone(nodes), "postgres-primary") {
			if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
		composeCheckLogengine(t, s)
	}
	gw := composeService(t, p, "cluster-gateway")
	if u := composeEnv(gw, "LOGENGINE_POSTGRES_READ_URL"); !strings.Contains(u, "@postgres-replica:5432/") {
		t.Errorf("cluster-gateway reads from %q, want the replica", u)
	}
	if d, ok := gw.DependsOn["postgres-replica"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("cluster-gateway does not wait for the replica")
	}
	if composeEnv(gw, "LOGENGINE_CACHE_PREFIX") == composeEnv(composeService(t, p, "gateway"), "LOGENGINE_CACHE_PREFIX") {
		t.Error("both gateways share Redis with the same cache prefix: one would serve the other's results")
	}
	composeCheckScalable(t, composeService(t, p, "cluster-consumer"))
	composeCheckScalable(t, composeService(t, p, "consumer"))
	composeCheckReplication(t, p)
}

// composeCheckReplication checks that the replica and the primary's init
// script agree: host, user, password and slot.
func composeCheckReplication(t *testing.T, p *types.Project) {
	t.Helper()
	primary := composeService(t, p, "postgres-primary")
	var script string
	for _, v := range primary.Volumes {
		if v.Target == "/docker-entrypoint-initdb.d/10-replication.sh" {
			script = v.Source
		}
	}
	if script == "" {
		t.Fatal("postgres-primary mounts no replication init script")
	}
	raw, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	init := string(raw)
	replica := composeService(t, p, "postgres-replica")
	cmd := strings.Join(replica.Command, " ")
	pass := composeEnv(replica, "PGPASSWORD")
	for _, want := range []string{
		"CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '" + pass + "'",
		"pg_create_physical_replication_slot('replica_1')",
		"host replication replicator all scram-sha-256",
	} {
		if pass == "" || !strings.Contains(init, want) {
			t.Errorf("%s lacks %q", script, want)
		}
	}
	for _, want := range []string{"pg_basebackup", "--host=postgres-primary", "--username=replicator", "--slot=replica_1",
		"--write-recovery-conf", "--wal-method=stream", "exec postgres"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("postgres-replica's command lacks %q:\n%s", want, cmd)
		}
	}
	if replica.User != "postgres" {
		t.Errorf("postgres-replica runs as %q: PostgreSQL refuses to run as root", replica.User)
	}
	if d, ok := replica.DependsOn["postgres-primary"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("postgres-replica does not wait for the primary")
	}
}

// composeCheckScalable: `--scale` needs replicas that do not collide on a
// container name or a host port.
func composeCheckScalable(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	if s.ContainerName != "" {
		t.Errorf("%s: container_name %q prevents --scale", s.Name, s.ContainerName)
	}
	for _, port := range s.Ports {
		if port.Published != "" {
			t.Errorf("%s: host port %s prevents --scale", s.Name, port.Published)
		}
	}
}

// composeCheckLogengine checks that every flag and LOGENGINE_ variable a
// logengine service sets names a flag of `logengine serve`, and that the
// configuration they make together validates.
func composeCheckLogengine(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	if len(s.Command) == 0 || s.Command[0] != "serve" {
		t.Fatalf("%s: command %v, want serve", s.Name, s.Command)
	}
	cfg := configs.Default()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(s.Command[1:]); err != nil {
		t.Errorf("%s: %v", s.Name, err)
	}
	env := map[string]string{}
	for k, v := range s.Environment {
		if !strings.HasPrefix(k, configs.EnvPrefix) {
			continue
		}
		flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, configs.EnvPrefix), "_", "-"))
		if fs.Lookup(flag) == nil {
			t.Errorf("%s: %s names no flag of logengine serve", s.Name, k)
			continue
		}
		if v == nil {
			t.Errorf("%s: %s has no value", s.Name, k)
			continue
		}
		env[k] = *v
	}
	if err := configs.Resolve(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Errorf("%s: %v", s.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("%s: the configuration does not validate: %v", s.Name, err)
	}
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func composeEnv(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
