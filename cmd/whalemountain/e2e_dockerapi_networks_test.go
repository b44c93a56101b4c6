package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
)

// webCmd serves "hi from NAME" on port 8080 with busybox httpd.
func webCmd(name string) []string {
	return []string{"sh", "-c", "mkdir -p /tmp/www && echo hi from " + name + " > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"}
}

// TestE2EDockerAPINetworks: a student's own networks with the docker CLI — create, list,
// inspect, run on one with an alias, reach a container by name and alias, connect and
// disconnect, remove — labelled by the server and holding only their own containers.
func TestE2EDockerAPINetworks(t *testing.T) {
	s, alice, bob := dockerAPIServer(t, "n")
	d := newDockerCLI(t, s.server, alice, "alice")
	bobD := newDockerCLI(t, s.server, bob, "bob")
	bobD.must("network", "create", "bobnet")
	bobD.must("network", "connect", "bobnet", "bob-box")

	netID := strings.TrimSpace(d.must("network", "create", "--label", "course=os", "mynet"))
	if got := strings.Fields(d.must("network", "ls", "--format", "{{.Name}}")); !slices.Equal(got, []string{"bridge", "mynet"}) {
		t.Errorf("docker network ls: %q, want bridge and mynet only", got)
	}
	eng := s.engineNetwork(t, netID)
	if eng.Labels[docker.LabelOwner] != "alice" || eng.Labels[docker.LabelKind] != docker.KindNetwork ||
		eng.Labels[docker.LabelName] != "mynet" || eng.Labels["course"] != "os" || eng.Driver != "bridge" {
		t.Errorf("the engine's network: labels %v, driver %s", eng.Labels, eng.Driver)
	}
	if r := d.run("network", "create", "mynet"); r.Code == 0 || !strings.Contains(r.Stderr, "already exists") {
		t.Errorf("a second mynet: %s", r)
	}

	d.must(append([]string{"run", "-d", "--name", "db", "--network", "mynet", "--network-alias", "database", s.img}, webCmd("db")...)...)
	d.must("run", "-d", "--name", "web", "--network", "mynet", s.img, "sleep", "3600")
	d.must(append([]string{"run", "-d", "--name", "lone", s.img}, webCmd("lone")...)...)
	for _, host := range []string{"db", "database"} {
		if out := d.must("exec", "web", "wget", "-qO-", "http://"+host+":8080/"); out != "hi from db\n" {
			t.Errorf("web reaching %s on mynet: %q", host, out)
		}
	}
	// lone is on alice's default network: not reachable from mynet until connected.
	if r := d.run("exec", "web", "wget", "-qO-", "-T", "3", "http://lone:8080/"); r.Code == 0 {
		t.Errorf("web reached lone across networks: %s", r)
	}
	d.must("network", "connect", "--alias", "solo", "mynet", "lone")
	if out := d.must("exec", "web", "wget", "-qO-", "http://solo:8080/"); out != "hi from lone\n" {
		t.Errorf("web reaching lone by its alias once connected: %q", out)
	}
	// Never bob's: his container's name does not resolve on alice's network.
	if r := d.run("exec", "web", "wget", "-qO-", "-T", "3", "http://bob-box:8080/"); r.Code == 0 {
		t.Errorf("web reached bob-box: %s", r)
	}
	in := d.must("network", "inspect", "mynet", "--format", "{{.Name}} {{range .Containers}}{{.Name}},{{end}} {{len .Options}} {{index .Labels \"course\"}}")
	if f := strings.Fields(in); len(f) != 4 || f[0] != "mynet" || f[2] != "0" || f[3] != "os" ||
		!slices.Equal(sortedSplit(f[1]), []string{"db", "lone", "web"}) {
		t.Errorf("docker network inspect mynet: %q", in)
	}
	if in := d.must("network", "inspect", netID[:6], "--format", "{{.Name}}"); in != "mynet\n" {
		t.Errorf("docker network inspect by ID prefix: %q", in)
	}
	if out := d.must("inspect", "db", "--format", "{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{join $v.Aliases \",\"}} {{end}}"); !strings.HasPrefix(out, "mynet mynet=") ||
		!strings.Contains(out, "database") || strings.Contains(out, s.prefix) {
		t.Errorf("docker inspect db: %q", out)
	}
	lone := s.engineInspect(t, s.engineContainer(t, "alice", "lone").ID)
	for n := range lone.NetworkSettings.Networks {
		if n != s.prefix+"-net-alice" && s.engineNetwork(t, n).ID != netID {
			t.Errorf("lone is on a network that is not alice's: %s", n)
		}
	}
	d.must("network", "disconnect", "mynet", "lone")
	if r := d.run("network", "rm", "mynet"); r.Code == 0 || !strings.Contains(r.Stderr, "active endpoints") {
		t.Errorf("docker network rm of a network in use: %s", r)
	}
	d.must("rm", "-f", "db", "web", "lone")
	d.must("network", "rm", "mynet")
	if got := strings.Fields(d.must("network", "ls", "--format", "{{.Name}}")); !slices.Equal(got, []string{"bridge"}) {
		t.Errorf("docker network ls after rm: %q", got)
	}
	for _, a := range []string{"network create", "network connect", "network disconnect", "network rm"} {
		s.waitAudit(t, a, func(e auditEntry) bool { return e.User == "alice" && e.Action == a && e.Result == "ok" })
	}
	// bob's network is untouched and still holds only his container.
	bn := s.engineNetwork(t, s.prefix+"-unet-3-bob-bobnet")
	if len(bn.Containers) != 1 {
		t.Errorf("bob's network holds %d containers, want his one", len(bn.Containers))
	}
}

func sortedSplit(s string) []string {
	out := strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
	slices.Sort(out)
	return out
}

// TestE2EDockerAPICompose: the real docker compose (Debian's docker-compose) brings a
// two-service project up through a forwarded socket: its network is the student's, its
// services reach each other by service name, and down removes it all.
func TestE2EDockerAPICompose(t *testing.T) {
	needTools(t, "docker-compose")
	s, alice, _ := dockerAPIServer(t, "c")
	d := newDockerCLI(t, s.server, alice, "alice")
	sock := filepath.Join(d.dir, "api.sock")
	forwardSockets(t, s, alice, "alice", sock+":/docker.sock")
	project := filepath.Join(d.dir, "lab")
	if err := os.MkdirAll(project, 0o700); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`version: "3.7"
services:
  db:
    image: %s
    command: ["sh", "-c", "mkdir -p /w && echo hi from db > /w/index.html && exec httpd -f -p 8080 -h /w"]
  web:
    image: %s
    command: ["sleep", "3600"]
    depends_on: [db]
`, s.img, s.img)
	if err := os.WriteFile(filepath.Join(project, "docker-compose.yml"), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	compose := func(args ...string) sshResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"--ansi", "never", "-p", "lab"}, args...)...)
		cmd.Env = append(slices.DeleteFunc(slices.Clone(d.env), func(kv string) bool { return strings.HasPrefix(kv, "DOCKER_HOST=") }),
			"DOCKER_HOST=unix://"+sock, "COMPOSE_INTERACTIVE_NO_CLI=1")
		cmd.Dir = project
		var stdout, stderr lockedBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("docker-compose %q did not finish\n%s\n%s", args, stdout.String(), stderr.String())
		}
		return sshResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
	}
	if r := compose("up", "-d"); r.Code != 0 {
		t.Fatalf("docker-compose up -d: %s", r)
	}
	u := d.withHost("unix://" + sock)
	if got := strings.Fields(u.must("ps", "--format", "{{.Names}}")); !slices.Equal(sortedSplit(strings.Join(got, ",")), []string{"lab_db_1", "lab_web_1"}) {
		t.Errorf("docker ps after compose up: %q", got)
	}
	if got := strings.Fields(u.must("network", "ls", "--format", "{{.Name}}")); !slices.Contains(got, "lab_default") {
		t.Errorf("docker network ls after compose up: %q", got)
	}
	if out := u.must("exec", "lab_web_1", "wget", "-qO-", "http://db:8080/"); out != "hi from db\n" {
		t.Errorf("web reaching db by its service name: %q", out)
	}
	if r := compose("ps"); r.Code != 0 || !strings.Contains(r.Stdout, "lab_db_1") || !strings.Contains(r.Stdout, "Up") {
		t.Errorf("docker-compose ps: %s", r)
	}
	web := s.engineInspect(t, s.engineContainer(t, "alice", "lab_web_1").ID)
	checkHardened(t, s, web, "alice", "lab_web_1")
	for n := range web.NetworkSettings.Networks {
		if n != s.prefix+"-unet-5-alice-lab_default" {
			t.Errorf("lab_web_1 is on network %s", n)
		}
	}
	// A changed service is recreated: compose renames the old container, makes the new
	// one, removes the old.
	if err := os.WriteFile(filepath.Join(project, "docker-compose.yml"), []byte(strings.Replace(yml, `["sleep", "3600"]`, `["sleep", "3601"]`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := compose("up", "-d"); r.Code != 0 || !strings.Contains(r.Stderr, "Recreating lab_web_1") {
		t.Fatalf("docker-compose up -d after a change: %s", r)
	}
	if out := u.must("inspect", "--format", "{{join .Config.Cmd \" \"}}", "lab_web_1"); out != "sleep 3601\n" {
		t.Errorf("the recreated web: %q", out)
	}
	if got := sortedSplit(strings.Join(strings.Fields(u.must("ps", "-a", "--format", "{{.Names}}")), ",")); !slices.Equal(got, []string{"lab_db_1", "lab_web_1"}) {
		t.Errorf("docker ps -a after the recreate: %q", got)
	}
	if r := compose("down"); r.Code != 0 {
		t.Fatalf("docker-compose down: %s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := s.cli.NetworkList(ctx, client.NetworkListOptions{Filters: s.filters("alice", "")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Items {
		if n.Labels[docker.LabelKind] == docker.KindNetwork {
			t.Errorf("compose down left network %s", n.Name)
		}
	}
	if cs := s.engineContainers(t, "alice", ""); len(cs) != 0 {
		t.Errorf("compose down left %d containers", len(cs))
	}
}

// TestE2EDockerAPIRename: docker rename changes the name a student knows a container by,
// everywhere (the docker CLI, the command line), keeps its owner and labels, frees the old
// name, and refuses a name in use or a bad one.
func TestE2EDockerAPIRename(t *testing.T) {
	s, alice, _ := dockerAPIServer(t, "m")
	d := newDockerCLI(t, s.server, alice, "alice")
	id := strings.TrimSpace(d.must("run", "-d", "--name", "box1", s.img, "sleep", "3600"))
	d.must("rename", "box1", "box2")
	if out := d.must("ps", "--format", "{{.Names}}"); out != "box2\n" {
		t.Errorf("docker ps after rename: %q", out)
	}
	if out := d.must("exec", "box2", "echo", "renamed"); out != "renamed\n" {
		t.Errorf("docker exec box2: %q", out)
	}
	if r := d.run("exec", "box1", "true"); r.Code == 0 || !strings.Contains(r.Stderr, "No such container: box1") {
		t.Errorf("docker exec of the old name: %s", r)
	}
	if e, ok := findEntry(s.psJSON(t, alice, "alice", "-a"), "alice", "box2"); !ok || e.State != "running" {
		t.Errorf("ssh ps after rename: %+v", s.psJSON(t, alice, "alice", "-a"))
	}
	in := s.engineInspect(t, id)
	if in.Name != "/"+s.prefix+"-alice-box2" || in.Config.Labels[docker.LabelOwner] != "alice" || in.Config.Labels[docker.LabelName] != "box1" {
		t.Errorf("the engine's container after rename: name %s, labels %v", in.Name, in.Config.Labels)
	}
	if out := d.must("inspect", "--format", "{{.Name}}", id[:12]); out != "/box2\n" {
		t.Errorf("docker inspect after rename: %q", out)
	}
	// The old name is free again; a name in use and a bad one are refused, nothing changed.
	d.must("run", "-d", "--name", "box1", s.img, "sleep", "3600")
	if r := d.run("rename", "box1", "box2"); r.Code == 0 || !strings.Contains(r.Stderr, "is already in use") {
		t.Errorf("rename onto a name in use: %s", r)
	}
	if r := d.run("rename", "box2", "Bad Name"); r.Code == 0 || !strings.Contains(r.Stderr, "invalid container name") {
		t.Errorf("rename to a bad name: %s", r)
	}
	if got := sortedSplit(strings.Join(strings.Fields(d.must("ps", "--format", "{{.Names}}")), ",")); !slices.Equal(got, []string{"box1", "box2"}) {
		t.Errorf("docker ps after refused renames: %q", got)
	}
	s.waitAudit(t, "the rename", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "rename" && e.Result == "ok" && e.Target == "alice/box1 -> box2"
	})
	d.must("rm", "-f", "box1", "box2")
}
