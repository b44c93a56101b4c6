package sshd

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// TestSessionsReleaseEverything opens dashboards, shells (ended by exit and by the client
// going away) and exec commands, closes them, and checks that every goroutine they started
// has ended (goleak, counting only what started after a warm-up round).
func TestSessionsReleaseEverything(t *testing.T) {
	ctx := context.Background()
	cli := dockertest.Client(t)
	image := dockertest.BusyboxImage(ctx, t, cli)
	svc := dockertest.NewService(t)
	addr, signer := startServer(t, cliDeps(svc))
	id := backend.Identity{User: "leaky", Role: backend.RoleStudent}
	if _, err := svc.Run(ctx, id, docker.RunSpec{Name: "box", Image: image}); err != nil {
		t.Fatal(err)
	}
	dial := func() *gossh.Client {
		c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{User: "leaky", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	round := func() {
		// A dashboard, left by closing the connection.
		c, scr := openDashboard(t, addr, "leaky", signer)
		waitFor(t, func() bool { return scr.contains("WhaleMountain") }, "dashboard drawn")
		c.Close()
		// An exec that runs to its end.
		c = dial()
		s, _ := c.NewSession()
		s.Stdin = strings.NewReader("hello")
		out, err := s.Output("exec box -- cat")
		if err != nil || string(out) != "hello" {
			t.Fatalf("exec: %q %v", out, err)
		}
		c.Close()
		// A shell whose client goes away in the middle of a command.
		c = dial()
		s, _ = c.NewSession()
		if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		scr2 := &capture{}
		s.Stdout = scr2
		in, _ := s.StdinPipe()
		if err := s.Start("shell box"); err != nil {
			t.Fatal(err)
		}
		in.Write([]byte("echo ready-$((1+1))\n"))
		waitFor(t, func() bool { return scr2.contains("ready-2") }, "shell answers")
		in.Write([]byte("sleep 300\n"))
		c.Close()
	}
	round() // warm up: connections, caches, the first exec's lookups
	waitFor(t, func() bool { return sleeping(t, svc, id) == 0 }, "no sleep left after the first round")
	// Every goroutine that runs now may stay; any other started by the rounds below must end.
	// The engine client's idle connections come and go at its own pace (kept up to 30 s).
	before := goleak.IgnoreCurrent()
	for range 5 {
		round()
	}
	waitFor(t, func() bool { return sleeping(t, svc, id) == 0 }, "no sleep left in the container")
	opts := []goleak.Option{before,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop")}
	// Find waits a second or so by itself; a loaded machine may need longer.
	for deadline := time.Now().Add(30 * time.Second); goleak.Find(opts...) != nil && time.Now().Before(deadline); {
	}
	goleak.VerifyNone(t, opts...)
}

// sleeping counts `sleep 300` processes in the user's container.
func sleeping(t *testing.T, svc *docker.Service, id backend.Identity) int {
	ex, err := svc.Exec(context.Background(), id, "box", backend.ExecSpec{Cmd: []string{"ps"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	var b strings.Builder
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ex.Stdout().Read(buf)
			b.Write(buf[:n])
			if err != nil {
				close(done)
				return
			}
		}
	}()
	ex.Stdin().Close()
	<-done
	ex.Wait(context.Background())
	return strings.Count(b.String(), "sleep 300")
}
