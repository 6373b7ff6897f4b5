// Package deploy holds packaging files (Dockerfile, systemd unit,
// Kubernetes example, Grafana dashboard); its tests check that they parse
// and agree with the code, since no container engine runs in CI.
package deploy

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/leadtail/leadtail/connector"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

var dockerInstructions = []string{"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
	"VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}

func parseDockerfile(t *testing.T, text string) []instruction {
	t.Helper()
	var out []instruction
	var cur *instruction
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if cur == nil && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur != nil && strings.HasPrefix(line, "#") {
			continue // comments inside a continued instruction are dropped
		}
		cont := strings.HasSuffix(line, `\`)
		line = strings.TrimSuffix(line, `\`)
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			cmd = strings.ToUpper(cmd)
			if !slices.Contains(dockerInstructions, cmd) {
				t.Fatalf("Dockerfile:%d: unknown instruction %q", i+1, cmd)
			}
			cur = &instruction{line: i + 1, cmd: cmd, args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + strings.TrimSpace(line)
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Fatalf("Dockerfile:%d: instruction continues past the end", cur.line)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, read(t, "Dockerfile"))
	// Split into stages.
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) != 2 {
		t.Fatalf("want a two-stage build, got %d stages", len(stages))
	}
	build, final := stages[0], stages[1]
	if !strings.HasSuffix(build[0].args, " AS build") {
		t.Errorf("first stage %q: want it named build", build[0].args)
	}
	if img := final[0].args; !strings.Contains(img, "distroless/static") && img != "scratch" {
		t.Errorf("final image %q: want distroless/static or scratch", img)
	}
	find := func(stage []instruction, cmd string) []instruction {
		var out []instruction
		for _, in := range stage {
			if in.cmd == cmd {
				out = append(out, in)
			}
		}
		return out
	}
	var goBuild string
	for _, r := range find(build, "RUN") {
		if strings.Contains(r.args, "go build") {
			goBuild = r.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "-X main.commitID=", "./cmd/leadtail"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build %q lacks %q", goBuild, want)
		}
	}
	// The -X targets must exist, or the linker silently ignores them.
	mainGo := read(t, "../cmd/leadtail/main.go")
	for _, v := range []string{"var version = ", "var commitID = "} {
		if !strings.Contains(mainGo, v) {
			t.Errorf("cmd/leadtail/main.go has no %q for -ldflags -X", v)
		}
	}
	users := find(final, "USER")
	if len(users) == 0 {
		t.Fatal("the final stage runs as root: no USER")
	}
	if u := users[len(users)-1].args; u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		t.Errorf("USER %s: want a non-root user", u)
	}
	var binary string
	for _, c := range find(final, "COPY") {
		f := strings.Fields(c.args)
		if strings.Contains(c.args, "--from=build") && len(f) >= 2 && strings.HasSuffix(f[len(f)-2], "/leadtail") {
			binary = f[len(f)-1]
		}
	}
	for _, cmd := range []string{"ENTRYPOINT", "CMD"} {
		is := find(final, cmd)
		if len(is) != 1 {
			t.Fatalf("want one %s in the final stage, got %d", cmd, len(is))
		}
		var argv []string
		if err := json.Unmarshal([]byte(is[0].args), &argv); err != nil {
			t.Fatalf("Dockerfile:%d: %s must be exec form (a JSON array) so that SIGTERM reaches leadtail: %v", is[0].line, cmd, err)
		}
		if cmd == "ENTRYPOINT" && (len(argv) != 1 || argv[0] != binary) {
			t.Errorf("ENTRYPOINT %v: want [%q], the copied binary", argv, binary)
		}
		if cmd == "CMD" && (len(argv) < 1 || argv[0] != "run") {
			t.Errorf("CMD %v: want run -c …", argv)
		}
	}
	if e := find(final, "EXPOSE"); len(e) != 1 || e[0].args != "9464" {
		t.Errorf("EXPOSE %v: want 9464 (http.listen)", e)
	}
}

// unit is a systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, text string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if _, dup := u[section]; dup {
				t.Fatalf("leadtail.service:%d: section [%s] twice", n, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("leadtail.service:%d: not a key=value line in a section: %q", n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	text := read(t, "leadtail.service")
	u := parseUnit(t, text)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	svc := u["Service"]
	want := map[string]string{
		"Restart":                 "on-failure",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"DynamicUser":             "yes",
		"StateDirectory":          "leadtail",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"KillSignal":              "SIGTERM",
	}
	for k, v := range want {
		if got := svc[k]; len(got) == 0 || got[len(got)-1] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if e := svc["ExecStart"]; len(e) != 1 || !strings.Contains(e[0], "leadtail run -c ") {
		t.Errorf("ExecStart %q: want leadtail run -c FILE", e)
	}
	if len(svc["EnvironmentFile"]) != 1 {
		t.Error("no EnvironmentFile for the token")
	}
	for _, e := range svc["Environment"] {
		if strings.Contains(e, "META_ACCESS_TOKEN") || strings.Contains(e, "PASSWORD") {
			t.Errorf("Environment=%s: secrets belong in the EnvironmentFile", e)
		}
	}
	stop, err := time.ParseDuration(strings.TrimSpace(svc["TimeoutStopSec"][0]))
	if err != nil || stop <= 30*time.Second {
		t.Errorf("TimeoutStopSec %v (%v): want more than delivery.shutdown_timeout (30s)", svc["TimeoutStopSec"], err)
	}
	if env := read(t, "leadtail.env.example"); !strings.Contains(env, "\nMETA_ACCESS_TOKEN=\n") {
		t.Error("leadtail.env.example: want an empty META_ACCESS_TOKEN= line")
	}

	// systemd's own parser, where it is installed: with the binary path
	// replaced by one that exists (verify checks it).
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: skipping systemd's own check")
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "leadtail.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/usr/local/bin/leadtail", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// k8s is the subset of the Kubernetes objects the test reads.
type k8s struct {
	Kind     string                `yaml:"kind"`
	Metadata struct{ Name string } `yaml:"metadata"`
	Data     map[string]string     `yaml:"data"`
	Spec     struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct{ Name string } `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name, Key string
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	SecurityContext struct {
		RunAsNonRoot             bool  `yaml:"runAsNonRoot"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func TestKubernetesExample(t *testing.T) {
	dec := yaml.NewDecoder(strings.NewReader(read(t, "kubernetes.yaml")))
	objs := map[string]k8s{}
	for {
		var o k8s
		err := dec.Decode(&o)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("kubernetes.yaml: %v", err)
		}
		if o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("kubernetes.yaml: an object without kind or name: %+v", o)
		}
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}
	sts, ok := objs["StatefulSet/crm-postgres"]
	if !ok {
		t.Fatalf("no StatefulSet crm-postgres in %v", slices.Sorted(maps.Keys(objs)))
	}
	pod := sts.Spec.Template.Spec
	var lt *container
	names := []string{}
	for i := range pod.Containers {
		names = append(names, pod.Containers[i].Name)
		if pod.Containers[i].Name == "leadtail" {
			lt = &pod.Containers[i]
		}
	}
	if lt == nil || len(pod.Containers) < 2 {
		t.Fatalf("want leadtail as a sidecar of the database, containers %v", names)
	}
	port := 0
	for _, p := range lt.Ports {
		if p.Name == "leadtail-http" {
			port = p.ContainerPort
		}
	}
	for name, p := range map[string]*probe{"/healthz": lt.LivenessProbe, "/readyz": lt.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port != "leadtail-http" {
			t.Errorf("probe %s: got %+v", name, p)
		}
	}
	env := map[string]string{}
	for _, e := range lt.Env {
		if e.Value != "" {
			env[e.Name] = e.Value
		}
		if e.Name == "META_ACCESS_TOKEN" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("META_ACCESS_TOKEN must come from a Secret")
		}
	}
	if _, ok := env["META_ACCESS_TOKEN"]; ok {
		t.Error("META_ACCESS_TOKEN given as a plain value")
	}
	if sc := lt.SecurityContext; !sc.RunAsNonRoot || !sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("leadtail securityContext %+v: want non-root, read-only root, no privilege escalation", sc)
	}
	mounts := map[string]string{}
	for _, m := range lt.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	pvcs := map[string]bool{}
	for _, v := range sts.Spec.VolumeClaimTemplates {
		pvcs[v.Metadata.Name] = true
	}
	if !pvcs["leadtail-state"] || mounts["leadtail-state"] == "" {
		t.Fatalf("state_dir must be on a PVC: claims %v, mounts %v", pvcs, mounts)
	}

	// The config in the ConfigMap loads, and agrees with the pod.
	cm := objs["ConfigMap/leadtail"]
	text, ok := cm.Data["leadtail.yaml"]
	if !ok {
		t.Fatal("ConfigMap leadtail has no leadtail.yaml")
	}
	if got := mounts["leadtail-config"]; got == "" || !slices.Contains(lt.Args, filepath.Join(got, "leadtail.yaml")) {
		t.Errorf("args %v do not name the mounted config (%s)", lt.Args, got)
	}
	path := filepath.Join(t.TempDir(), "leadtail.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := connector.LoadWith(path, func(k string) (string, bool) {
		switch k {
		case "META_ACCESS_TOKEN", "LEADTAIL_DB_PASSWORD":
			return "x", true
		}
		return "", false
	})
	if err != nil {
		t.Fatalf("the example's leadtail.yaml does not load:\n%v", err)
	}
	if cfg.StateDir != mounts["leadtail-state"] {
		t.Errorf("state_dir %s is not the PVC's mount %s", cfg.StateDir, mounts["leadtail-state"])
	}
	_, p, _ := strings.Cut(cfg.HTTP.Listen, ":")
	if strings.HasPrefix(cfg.HTTP.Listen, "127.") || p != strconv.Itoa(port) {
		t.Errorf("http.listen %s: want a non-loopback address on the probed port %d", cfg.HTTP.Listen, port)
	}
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= cfg.Delivery.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %s must exceed delivery.shutdown_timeout %s", grace, cfg.Delivery.ShutdownTimeout)
	}
}

var metricRef = regexp.MustCompile(`\bleadtail_[a-z0-9_]+`)

// dashboardQueries returns every PromQL string of the dashboard: panel
// targets and template variable queries.
func dashboardQueries(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				out = append(out, s)
				continue
			}
			out = append(out, dashboardQueries(val)...)
		}
	case []any:
		for _, val := range x {
			out = append(out, dashboardQueries(val)...)
		}
	}
	return out
}

func TestGrafanaDashboard(t *testing.T) {
	var dash map[string]any
	if err := json.Unmarshal([]byte(read(t, "grafana-dashboard.json")), &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	panels, _ := dash["panels"].([]any)
	if dash["title"] == "" || len(panels) == 0 {
		t.Fatal("dashboard without title or panels")
	}
	ids := map[float64]bool{}
	for _, p := range panels {
		pm := p.(map[string]any)
		id, _ := pm["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v used twice", id)
		}
		ids[id] = true
		if _, ok := pm["gridPos"].(map[string]any); !ok {
			t.Errorf("panel %v has no gridPos", pm["title"])
		}
	}
	registered := connector.MetricNames()
	used := map[string]bool{}
	for _, q := range dashboardQueries(dash) {
		for _, name := range metricRef.FindAllString(q, -1) {
			base := name
			if !slices.Contains(registered, name) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suffix); ok {
						base = b
						break
					}
				}
			}
			if !slices.Contains(registered, base) {
				t.Errorf("the dashboard queries %s, which leadtail does not register (query %q)", name, q)
			}
			used[base] = true
		}
	}
	for _, n := range registered {
		if !used[n] {
			t.Errorf("metric %s is on no dashboard panel", n)
		}
	}
}

// TestReadmeListsMetrics keeps the README's metrics table in step with
// the code.
func TestReadmeListsMetrics(t *testing.T) {
	readme := read(t, "../README.md")
	for _, n := range connector.MetricNames() {
		if !strings.Contains(readme, "`"+n+"`") {
			t.Errorf("README.md does not list %s", n)
		}
	}
}
