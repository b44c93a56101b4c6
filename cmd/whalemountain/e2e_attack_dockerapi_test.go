package main

// The attack suite's rows for the per-user Docker Engine API (door "docker API"): mallory
// with the real docker CLI over ssh://, and with raw HTTP over dial-stdio and a forwarded
// socket, after alice's objects.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker"
)

const apiDoor = "docker API"

// rawAPI sends one HTTP request over a fresh dial-stdio session (or, with socket, a
// direct-streamlocal channel to it) on c and returns the status line and body.
func rawAPI(c *ssh.Client, socket, method, path, body string) (string, error) {
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		method, path, len(body), body)
	var out []byte
	var stderr lockedBuffer
	if socket != "" {
		ch, reqs, err := c.OpenChannel("direct-streamlocal@openssh.com", ssh.Marshal(&struct {
			Path     string
			Reserved string
			Port     uint32
		}{socket, "", 0}))
		if err != nil {
			return "", fmt.Errorf("channel rejected: %w", err)
		}
		go ssh.DiscardRequests(reqs)
		defer ch.Close()
		if _, err := io.WriteString(ch, req); err != nil {
			return "", err
		}
		out, err = readAllWithin(ch, 20*time.Second)
		if err != nil {
			return "", err
		}
	} else {
		sess, err := c.NewSession()
		if err != nil {
			return "", err
		}
		defer sess.Close()
		sess.Stdin = strings.NewReader(req)
		var stdout lockedBuffer
		sess.Stdout, sess.Stderr = &stdout, &stderr
		done := make(chan error, 1)
		go func() { done <- sess.Run("docker system dial-stdio") }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			return "", fmt.Errorf("no end within 20s; got %q %q", stdout.String(), stderr.String())
		}
		out = []byte(stdout.String())
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(out))), nil)
	if err != nil {
		return "", fmt.Errorf("%w: read %q, stderr %q", err, clip(string(out), 300), stderr.String())
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(b))), nil
}

// readAllWithin reads r to its end, for at most d.
func readAllWithin(r io.Reader, d time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() { b, err := io.ReadAll(r); ch <- result{b, err} }()
	select {
	case res := <-ch:
		return res.b, res.err
	case <-time.After(d):
		return nil, fmt.Errorf("no end within %v", d)
	}
}

// dockerAPIRows: every way mallory's docker CLI can name alice's containers answers as
// for one nobody has; nothing she creates carries alice's labels; nothing of alice's is
// listed; tags, pushes, builds and removals of alice's namespace are refused; raw
// requests outside the allow-list are 403s.
func (f *attackFixture) dockerAPIRows(tb *attackTable) {
	d := newDockerCLI(f.t, f.s.server, f.mallory, "mallory")
	cli := func(t *testing.T, args ...string) sshResult {
		dc := &dockerCLI{t: t, dir: d.dir, env: d.env}
		return dc.run(args...)
	}
	box := atkObj{"box", f.box.ID}
	ctl := atkObj{f.ctl, f.ctlID}
	p := f.s.prefix
	forms := []refForm{
		{"name", func(o atkObj) string { return o.name }},
		{"/name", func(o atkObj) string { return "/" + o.name }},
		{"engine name", func(o atkObj) string { return p + "-alice-" + o.name }},
		{"full ID", func(o atkObj) string { return o.id }},
		{"12-digit ID", func(o atkObj) string { return o.id[:12] }},
		{"4-digit ID", func(o atkObj) string { return o.id[:4] }},
	}
	verbs := []struct {
		name string
		args func(ref string) []string
	}{
		{"inspect", func(r string) []string { return []string{"inspect", "--type", "container", r} }},
		{"logs", func(r string) []string { return []string{"logs", r} }},
		{"exec", func(r string) []string { return []string{"exec", r, "cat", "/www/index.html"} }},
		{"cp out", func(r string) []string { return []string{"cp", r + ":/www/index.html", "-"} }},
		{"top", func(r string) []string { return []string{"top", r} }},
		{"stats", func(r string) []string { return []string{"stats", "--no-stream", r} }},
		{"attach", func(r string) []string { return []string{"attach", "--no-stdin", r} }},
		{"wait", func(r string) []string { return []string{"wait", r} }},
		{"pause", func(r string) []string { return []string{"pause", r} }},
		{"kill", func(r string) []string { return []string{"kill", r} }},
		{"stop", func(r string) []string { return []string{"stop", r} }},
		{"restart", func(r string) []string { return []string{"restart", r} }},
		{"rename", func(r string) []string { return []string{"rename", r, "mine"} }},
		{"rm", func(r string) []string { return []string{"rm", r} }},
		{"run --volumes-from", func(r string) []string { return []string{"run", "--rm", "--volumes-from", r, f.img, "true"} }},
		{"run --network container:", func(r string) []string { return []string{"run", "--rm", "--network", "container:" + r, f.img, "true"} }},
	}
	for _, v := range verbs {
		for _, form := range forms {
			tb.equivRow(apiDoor, "mallory", "docker "+shownArgs(v.args(form.f(box)))+"   ["+form.what+"]", "docker "+shownArgs(v.args(form.f(ctl))),
				func(t *testing.T, control bool) sshResult {
					o := box
					if control {
						o = ctl
					}
					return withoutCLILog(cli(t, v.args(form.f(o))...))
				}, pairsFor(form, box, ctl), func(r sshResult) string { return f.aliceIntact(f.t) })
		}
	}
	// alice's stopped container.
	idle := atkObj{"idle", f.idle.ID}
	ctl4 := atkObj{f.ctl4, f.ctlID2}
	for _, form := range forms[3:] {
		args := func(o atkObj) []string { return []string{"start", form.f(o)} }
		tb.equivRow(apiDoor, "mallory", "docker "+shownArgs(args(idle))+"   ["+form.what+", stopped]", "docker "+shownArgs(args(ctl4)),
			func(t *testing.T, control bool) sshResult {
				if control {
					return cli(t, args(ctl4)...)
				}
				return cli(t, args(idle)...)
			}, pairsFor(form, idle, ctl4), nil)
	}

	// alice's own network, by every form; and alice's box onto mallory's network.
	got, err := rawAPI(f.ac, "", "POST", "/v1.41/networks/create", `{"Name":"alicenet"}`)
	var made struct{ ID string }
	if _, body, _ := strings.Cut(got, "{"); err != nil || !strings.HasPrefix(got, "201") || json.Unmarshal([]byte("{"+body), &made) != nil || made.ID == "" {
		f.t.Fatalf("alice's network: %q, %v", got, err)
	}
	anet := atkObj{"alicenet", made.ID}
	netForms := []refForm{forms[0], forms[3], forms[4], forms[5]}
	netVerbs := []struct {
		name string
		args func(ref string) []string
	}{
		{"network inspect", func(r string) []string { return []string{"network", "inspect", r} }},
		{"network rm", func(r string) []string { return []string{"network", "rm", r} }},
		{"network connect", func(r string) []string { return []string{"network", "connect", r, "mwork"} }},
		{"network disconnect", func(r string) []string { return []string{"network", "disconnect", r, "mwork"} }},
		{"run --network", func(r string) []string { return []string{"run", "--rm", "--network", r, f.img, "true"} }},
	}
	for _, v := range netVerbs {
		for _, form := range netForms {
			tb.equivRow(apiDoor, "mallory", "docker "+shownArgs(v.args(form.f(anet)))+"   [alice's network, "+form.what+"]", "docker "+shownArgs(v.args(form.f(ctl))),
				func(t *testing.T, control bool) sshResult {
					o := anet
					if control {
						o = ctl
					}
					return withoutCLILog(cli(t, v.args(form.f(o))...))
				}, pairsFor(form, anet, ctl), nil)
		}
	}
	for _, form := range forms[:5] {
		args := func(r string) []string { return []string{"network", "connect", "bridge", r} }
		tb.equivRow(apiDoor, "mallory", "docker "+shownArgs(args(form.f(box)))+"   ["+form.what+"]", "docker "+shownArgs(args(form.f(ctl))),
			func(t *testing.T, control bool) sshResult {
				o := box
				if control {
					o = ctl
				}
				return withoutCLILog(cli(t, args(form.f(o))...))
			}, pairsFor(form, box, ctl), func(r sshResult) string { return f.aliceIntact(f.t) })
	}
	tb.add(apiDoor, "mallory", "docker network ls", "only mallory's default network", func(t *testing.T) (string, bool) {
		r := cli(t, "network", "ls", "--format", "{{.Name}}")
		return describe(r), r.Code == 0 && r.Stdout == "bridge\n"
	})

	// Lists hold mallory's own only.
	tb.add(apiDoor, "mallory", "docker ps -a", "only mwork", func(t *testing.T) (string, bool) {
		r := cli(t, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}")
		return describe(r), r.Code == 0 && strings.TrimSpace(r.Stdout) == f.mwork+" mwork"
	})
	tb.add(apiDoor, "mallory", `docker ps -a --filter label=whalemountain.owner=alice --filter name=box`, "nothing", func(t *testing.T) (string, bool) {
		r := cli(t, "ps", "-a", "-q", "--filter", "label=whalemountain.owner=alice", "--filter", "name=box")
		return describe(r), r.Code == 0 && strings.TrimSpace(r.Stdout) == ""
	})
	tb.add(apiDoor, "mallory", "docker volume ls", "no volume of alice's, no home", func(t *testing.T) (string, bool) {
		r := cli(t, "volume", "ls", "-q")
		return describe(r), r.Code == 0 && !strings.Contains(r.Stdout, "alice") && !strings.Contains(r.Stdout, "home")
	})
	tb.add(apiDoor, "mallory", "docker info", "mallory's counts only, no paths", func(t *testing.T) (string, bool) {
		r := cli(t, "info", "--format", "{{.Containers}} {{.DockerRootDir}}")
		return describe(r), r.Code == 0 && strings.TrimSpace(r.Stdout) == "1"
	})

	// Alice's namespace and tags.
	refuse := func(input string, args []string, want string) {
		tb.add(apiDoor, "mallory", "docker "+input, "refused: "+want, func(t *testing.T) (string, bool) {
			r := cli(t, args...)
			return describe(r), r.Code != 0 && strings.Contains(r.Stderr, want)
		})
	}
	refuse("tag IMG "+f.ns+"/alice/x:1", []string{"tag", f.img, f.ns + "/alice/x:1"}, "only into your own registry namespace")
	refuse("tag IMG "+f.nsTag+" (over alice's tag)", []string{"tag", f.img, f.nsTag}, "only into your own registry namespace")
	refuse("push "+f.nsTag, []string{"push", f.nsTag}, "only into your own registry namespace")
	refuse("rmi "+f.nsTag, []string{"rmi", f.nsTag}, "not yours to remove")
	refuse("rmi --force "+f.nsUsedTag, []string{"rmi", "--force", f.nsUsedTag}, "rmi --force is not available")
	regHost := strings.TrimPrefix(f.reg.URL, "http://")
	tb.add(apiDoor, "mallory", "docker pull "+regHost+"/x/y:1 (a registry on the server's network)", "refused, the registry never asked",
		func(t *testing.T) (string, bool) {
			before := f.reg.Hits()
			r := cli(t, "pull", regHost+"/x/y:1")
			return describe(r), r.Code != 0 && strings.Contains(r.Stderr, "server's own network") && f.reg.Hits() == before &&
				!strings.Contains(r.Stdout+r.Stderr, f.marker)
		})
	build := func(input, df string, args []string, want string) {
		tb.add(apiDoor, "mallory", "docker build "+input, "refused: "+want, func(t *testing.T) (string, bool) {
			dir := filepath.Join(t.TempDir(), "ctx")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o600); err != nil {
				t.Fatal(err)
			}
			before := f.reg.Hits()
			r := cli(t, append(append([]string{"build"}, args...), dir)...)
			return describe(r), r.Code != 0 && strings.Contains(r.Stderr, want) && f.reg.Hits() == before
		})
	}
	build("-t "+f.ns+"/alice/x:1", "FROM "+f.img+"\n", []string{"-t", f.ns + "/alice/x:1"}, "only into your own registry namespace")
	build("-t "+f.nsTag+" (over alice's tag)", "FROM "+f.img+"\n", []string{"-t", f.nsTag}, "only into your own registry namespace")
	build("FROM a registry on the server's network", "FROM "+regHost+"/x/y:1\n", nil, "server's own network")
	build("ADD a URL on the server's network", "FROM "+f.img+"\nADD "+f.reg.URL+"/v2/ /x\n", nil, "does not fetch URLs")
	build("--network host", "FROM "+f.img+"\n", []string{"--network", "host"}, "networkmode")

	// Raw requests: forged labels, filters, paths, BuildKit, and what the allow-list leaves out.
	tb.add(apiDoor, "mallory", `POST /containers/create?name=box with Labels whalemountain.owner=alice, whalemountain.name=box`,
		"a container of mallory's, the server's labels; alice's box untouched", func(t *testing.T) (string, bool) {
			body := fmt.Sprintf(`{"Image":%q,"Cmd":["true"],"Labels":{"whalemountain.owner":"alice","whalemountain.name":"box",`+
				`"whalemountain.kind":"container","whalemountain.gpus":"GPU-forged"},"HostConfig":{"NetworkMode":"default"}}`, f.img)
			got, err := rawAPI(f.mc, "", "POST", "/v1.41/containers/create?name=box", body)
			if err != nil {
				return err.Error(), false
			}
			cs := f.s.engineContainers(t, "mallory", "box")
			if len(cs) != 1 {
				return got + fmt.Sprintf("; mallory has %d containers called box", len(cs)), false
			}
			in := f.s.engineInspect(t, cs[0].ID)
			_ = cli(t, "rm", "-f", "box")
			l := in.Config.Labels
			return got, strings.HasPrefix(got, "201") && l[docker.LabelOwner] == "mallory" && l[docker.LabelGPUs] == "" &&
				f.aliceIntact(t) == ""
		})
	raw := func(method, path, body, want string, socket string) {
		input := method + " " + path
		if socket != "" {
			input += " (through a forwarded " + socket + ")"
		}
		tb.add(apiDoor, "mallory", input, want, func(t *testing.T) (string, bool) {
			got, err := rawAPI(f.mc, socket, method, path, body)
			if err != nil {
				return err.Error(), false
			}
			leak := strings.Contains(got, f.box.ID[:12]) && !strings.Contains(path, f.box.ID[:12])
			return got, strings.HasPrefix(got, want) && !leak
		})
	}
	q := url.QueryEscape
	raw("GET", "/v1.41/containers/json?all=1&filters="+q(`{"label":["whalemountain.owner=alice"]}`), "", "200 OK []", "")
	raw("GET", "/v1.41/containers/json?all=1", "", "200 OK [{", "/docker.sock")
	raw("GET", "/v1.41/containers/"+q("../"+p+"-alice-box")+"/json", "", "403", "")
	raw("GET", "/v1.41/containers/"+p+"-alice-box/json", "", "404 Not Found {\"message\":\"No such container: "+p+"-alice-box\"}", "/docker.sock")
	raw("GET", "/containers/"+f.box.ID+"/archive?path=/www/index.html", "", "404", "")
	raw("GET", "/v1.41/exec/"+strings.Repeat("ab", 32)+"/json", "", "404", "")
	raw("POST", "/v1.41/build?version=2&session=x&t="+q(f.ns+"/mallory/x:1"), "", "403", "")
	raw("POST", "/v1.41/session", "", "403", "")
	raw("POST", "/v1.41/containers/"+f.mwork+"/update", `{"Privileged":true,"Memory":0}`, "403", "")
	raw("POST", "/v1.41/commit?container=mwork&repo="+q(f.ns+"/alice/x"), "", "403", "")
	raw("POST", "/v1.41/images/load", "", "403", "")
	raw("POST", "/v1.41/images/create?fromSrc="+q(f.reg.URL+"/x.tar"), "", "403", "")
	raw("POST", "/v1.41/build?remote="+q(f.reg.URL+"/ctx.tar"), "", "403", "")
	raw("POST", "/v1.41/networks/create", `{"Name":"x","Driver":"host"}`, "403", "")
	raw("POST", "/v1.41/volumes/create", `{"Name":"evil","Driver":"local","DriverOpts":{"type":"none","device":"/","o":"bind"}}`, "403", "")
	raw("DELETE", "/v1.41/volumes/"+p+"-home-alice", "", "404", "")
	raw("POST", "/v1.41/containers/mwork/exec", `{"Cmd":["id"],"Privileged":true}`, "403", "")
	raw("GET", "/v1.99/_ping", "", "400", "")
	tb.add(apiDoor, "mallory", `ssh host docker --host tcp://127.0.0.1:2375 system dial-stdio`, "not the API: a one-line hint, exit 2",
		func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, "docker", "--host", "tcp://127.0.0.1:2375", "system", "dial-stdio")
			return describe(r), r.Code == 2 && strings.Contains(r.Stderr, "DOCKER_HOST=ssh://mallory@")
		})
	tb.add(apiDoor, "mallory", "docker system dial-stdio with a PTY", "refused: no terminal", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, true, "docker", "system", "dial-stdio")
		return describe(r), r.Code == 2 && strings.Contains(r.Stdout+r.Stderr, "needs no terminal")
	})
}
