package check

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../logengine"
	repoRoot    = "../../.."
	releaseName = "logs"
	namespace   = "logging"
)

// kubeVersion is the cluster's version assumed in the checks; without it
// Helm's library assumes v1.20, below the chart's kubeVersion.
func kubeVersion() *chartutil.KubeVersion {
	return &chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}
}

// objects are the rendered manifests, decoded into their typed forms.
type objects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	secrets         []*corev1.Secret
	serviceAccounts []*corev1.ServiceAccount
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	serviceMonitors []*monitoringv1.ServiceMonitor
	prometheusRules []*monitoringv1.PrometheusRule
}

// readValues reads a values file and lays overrides (YAML) over it.
func readValues(t *testing.T, file, overrides string) chartutil.Values {
	t.Helper()
	vals := chartutil.Values{}
	if file != "" {
		v, err := chartutil.ReadValuesFile(file)
		if err != nil {
			t.Fatal(err)
		}
		vals = v
	}
	if overrides != "" {
		o, err := chartutil.ReadValues([]byte(overrides))
		if err != nil {
			t.Fatalf("overrides: %v", err)
		}
		vals = chartutil.CoalesceTables(o, vals)
	}
	return vals
}

// render does what `helm install --dry-run` does without a cluster (values
// schema, kubeVersion, templates, NOTES) and returns the manifest and the
// values the templates saw (the chart's defaults under vals).
func render(t *testing.T, vals chartutil.Values) (string, chartutil.Values, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	install := action.NewInstall(&action.Configuration{Log: t.Logf})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = kubeVersion()
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return "", nil, err
	}
	effective, err := chartutil.CoalesceValues(chrt, vals)
	if err != nil {
		t.Fatal(err)
	}
	return rel.Manifest, effective, nil
}

// decode decodes every document strictly: a field the Kubernetes or the
// Prometheus Operator types do not have is an error, as a misspelt or
// misplaced key would be ignored or refused by the API server.
func decode(t *testing.T, manifest string) *objects {
	t.Helper()
	var out objects
	for _, doc := range strings.Split(manifest, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			out.deployments, obj = append(out.deployments, o), o
		case "v1 Service":
			o := &corev1.Service{}
			out.services, obj = append(out.services, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			out.configMaps, obj = append(out.configMaps, o), o
		case "v1 Secret":
			o := &corev1.Secret{}
			out.secrets, obj = append(out.secrets, o), o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			out.serviceAccounts, obj = append(out.serviceAccounts, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			out.pdbs, obj = append(out.pdbs, o), o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			out.hpas, obj = append(out.hpas, o), o
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o := &monitoringv1.ServiceMonitor{}
			out.serviceMonitors, obj = append(out.serviceMonitors, o), o
		case "monitoring.coreos.com/v1 PrometheusRule":
			o := &monitoringv1.PrometheusRule{}
			out.prometheusRules, obj = append(out.prometheusRules, o), o
		default:
			t.Fatalf("rendered %s %s, which this check does not know: add its type to decode", head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %v in\n%s", head.Kind, err, doc)
		}
	}
	return &out
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// serveHelp is `logengine serve --help` of the code in this repository, so
// that a flag renamed there fails the chart's check.
func serveHelp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "logengine")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of logengine: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	help := exec.Command(bin, "serve", "--help")
	help.Stdout, help.Stderr = &stdout, &stderr
	if err := help.Run(); err != nil {
		t.Fatalf("logengine serve --help: %v\n%s", err, stderr.String())
	}
	return stdout.String() + stderr.String()
}

// flagNames are the long flags a help text lists.
func flagNames(help string) map[string]bool {
	flagLine := regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)`)
	names := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(help, -1) {
		names[m[1]] = true
	}
	return names
}

// argFlags parses a container's args after "serve" into flag → value ("" for
// a boolean flag); a repeated flag is an error, as the last one would win
// silently.
func argFlags(args []string) (map[string]string, error) {
	if len(args) == 0 || args[0] != "serve" {
		return nil, fmt.Errorf("args %q do not start with serve", args)
	}
	flags := map[string]string{}
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "--") {
			return nil, fmt.Errorf("argument %q is not a --flag", a)
		}
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if _, dup := flags[name]; dup {
			return nil, fmt.Errorf("--%s given twice", name)
		}
		flags[name] = value
	}
	return flags, nil
}

func readRepoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
