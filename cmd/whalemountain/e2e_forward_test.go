package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"whalemountain/backend/docker/dockertest"
)

// TestE2EPortForward: `ssh -L` reaches a port of the user's own running container by name,
// and nothing else: not another user's container, not an address, not a host name, not the
// server itself.
func TestE2EPortForward(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	c := startContainerServer(t, cli, img, "e2efw", ctrOptions{})
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	c.addKey(t, "alice", alice)
	c.addKey(t, "bob", bob)

	web := func(who string) []string {
		return []string{"run", "--name", "web", img, "sh", "-c",
			fmt.Sprintf("mkdir -p /www && echo page-of-%s > /www/index.html && httpd -f -p 8080 -h /www", who)}
	}
	c.mustRun(t, alice, "alice", web("alice")...)
	c.mustRun(t, bob, "bob", append([]string{"run", "--name", "bobweb"}, web("bob")[3:]...)...)
	c.mustRun(t, alice, "alice", "run", "--name", "idle", img)
	c.mustRun(t, alice, "alice", "stop", "idle")

	// One ssh -N with every forward; ExitOnForwardFailure is off so refused ones stay
	// refused per connection rather than ending the client.
	ports := map[string]string{}
	var flags []string
	for _, dest := range []string{"web:8080", "bobweb:8080", "web:9", "idle:8080", "127.0.0.1:" + c.Port, "localhost:8080", "172.17.0.1:80", "alice/web:8080"} {
		p := freePort(t)
		ports[dest] = p
		flags = append(flags, "-L", "127.0.0.1:"+p+":"+dest)
	}
	flags = append(flags, "-N")
	cmd := exec.Command(sshBinary(t), c.sshArgs(alice, "alice", flags)...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	get := func(dest string) (string, error) {
		hc := http.Client{Timeout: 5 * time.Second}
		resp, err := hc.Get("http://127.0.0.1:" + ports[dest] + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	// The container's httpd and the forward come up asynchronously: poll.
	var page string
	if !poll(pollTimeout, func() bool {
		var err error
		page, err = get("web:8080")
		return err == nil && strings.Contains(page, "page-of-alice")
	}) {
		t.Fatalf("ssh -L to alice's own container did not return the page: %q\nssh: %s", page, stderr.String())
	}
	for _, dest := range []string{"bobweb:8080", "web:9", "idle:8080", "127.0.0.1:" + c.Port, "localhost:8080", "172.17.0.1:80"} {
		if body, err := get(dest); err == nil {
			t.Errorf("forward to %s answered %q; want it refused", dest, body)
		}
	}
	// A TA-style owner/name is only a name like any other for alice's own container.
	if body, err := get("alice/web:8080"); err != nil || !strings.Contains(body, "page-of-alice") {
		t.Errorf("alice/web:8080: %q %v", body, err)
	}
	for _, want := range []string{"bobweb:8080", "127.0.0.1:" + c.Port, "localhost:8080", "172.17.0.1:80", "idle:8080"} {
		c.waitAudit(t, "refused forward to "+want, func(e auditEntry) bool {
			return e.Action == "forward" && e.Target == want && e.Result == "refused"
		})
	}
	// Remote forwarding is refused outright.
	r := c.sshFlags(t, alice, "alice", []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:" + freePort(t) + ":127.0.0.1:22", "-N"})
	if r.Code != 255 {
		t.Errorf("ssh -R: want refused (255), got %s", r)
	}
}
