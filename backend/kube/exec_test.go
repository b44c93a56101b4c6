package kube_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"whalemountain/backend"
	"whalemountain/backend/exectest"
	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// The test cluster's exec runs commands on this machine (kwok's ClusterExec), through the
// real API server and client-go's WebSocket executor.

func TestExecPipesAndExitCode(t *testing.T) {
	t.Parallel()
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log)
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	runRunning(t, svc, alice, kube.RunSpec{Name: "box"})

	e, err := svc.Exec(ctx, alice, "box", backend.ExecSpec{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	defer e.Close()
	out, errOut := readBoth(t, e)
	code, err := e.Wait(ctx)
	if err != nil || code != 3 || out != "out\n" || errOut != "err\n" {
		t.Errorf("exec: code %d, %v, stdout %q, stderr %q", code, err, out, errOut)
	}
	if e.Stderr() == nil || e.Resize(80, 24) == nil {
		t.Error("a pipe execution has a stderr and no terminal")
	}

	// Input, with environment variables (through env), ends by itself.
	e, err = svc.Exec(ctx, alice, "box", backend.ExecSpec{Cmd: []string{"sh", "-c", `read l; echo "$GREETING $l"`}, Env: []string{"GREETING=hello"}})
	if err != nil {
		t.Fatalf("exec with input: %v", err)
	}
	defer e.Close()
	if _, err := io.WriteString(e.Stdin(), "world\n"); err != nil {
		t.Fatal(err)
	}
	out, _ = readBoth(t, e)
	if code, err := e.Wait(ctx); err != nil || code != 0 || out != "hello world\n" {
		t.Errorf("exec with input: %d %v %q", code, err, out)
	}

	for _, bad := range []backend.ExecSpec{
		{Cmd: []string{""}},
		{Cmd: []string{"x=y"}, Env: []string{"A=1"}},
		{Cmd: []string{"true"}, Env: []string{"bad key=1"}},
		{Cmd: []string{"true"}, TTY: true, Term: "x\x1b"},
		{Cmd: []string{"true"}, TTY: true, Width: -1, Height: 3},
	} {
		if _, err := svc.Exec(ctx, alice, "box", bad); !errors.Is(err, kube.ErrInvalid) {
			t.Errorf("exec %+v: %v, want invalid", bad, err)
		}
	}
	entries := readAudit(t, logPath)
	if !hasAudit(entries, "alice", "pod exec", "alice/box", "ok") || !hasAudit(entries, "alice", "pod exec", "box", "refused") {
		t.Errorf("execs not audited: %+v", entries)
	}
}

func readBoth(t *testing.T, e backend.Execution) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(&errOut, e.Stderr())
		close(done)
	}()
	if _, err := io.Copy(&out, e.Stdout()); err != nil {
		t.Errorf("read stdout: %v", err)
	}
	<-done
	return out.String(), errOut.String()
}

// TestExecConformance: pods pass the Execution suite containers pass too.
func TestExecConformance(t *testing.T) {
	t.Parallel()
	svc := kubetest.NewService(t, nil)
	alice := kubetest.Student("alice")
	runRunning(t, svc, alice, kube.RunSpec{Name: "box"})
	exectest.Run(t, func(ctx context.Context, spec backend.ExecSpec) (backend.Execution, error) {
		return svc.Exec(ctx, alice, "box", spec)
	}, exectest.Gaps{
		StdinEOF:   "the test cluster's kubelet (kwok) does not pass the end of stdin on to the process; covered on containers",
		SignalExit: "the test cluster's kubelet (kwok) reports a process ended by a signal as an exec failure, not a status; covered on containers",
	})
}

func TestLogsAndForward(t *testing.T) {
	t.Parallel()
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log)
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	runRunning(t, svc, alice, kube.RunSpec{Name: "web"})

	read := func(opts kube.LogOptions) string {
		t.Helper()
		rc, err := svc.Logs(ctx, alice, "web", opts)
		if err != nil {
			t.Fatalf("logs %+v: %v", opts, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read logs: %v", err)
		}
		return string(b)
	}
	if got, want := read(kube.LogOptions{}), strings.Join(kubetest.LogLines, "\n")+"\n"; got != want {
		t.Errorf("logs %q, want %q", got, want)
	}
	if got, want := read(kube.LogOptions{Tail: 2}), strings.Join(kubetest.LogLines[1:], "\n")+"\n"; got != want {
		t.Errorf("tail 2: %q, want %q", got, want)
	}
	if got := read(kube.LogOptions{Tail: 1, Timestamps: true}); !strings.HasSuffix(got, " third line\n") || !strings.Contains(got, "T") {
		t.Errorf("with timestamps: %q", got)
	}
	if got := read(kube.LogOptions{Previous: true}); got != kubetest.PreviousLogLines[0]+"\n" {
		t.Errorf("previous: %q", got)
	}
	// Follow streams until the caller stops.
	fctx, cancel := context.WithCancel(ctx)
	rc, err := svc.Logs(fctx, alice, "web", kube.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(rc)
	if !sc.Scan() || sc.Text() != "third line" {
		t.Errorf("follow: %q %v", sc.Text(), sc.Err())
	}
	cancel()
	_ = rc.Close()

	// A port of the own pod (the test cluster forwards every port to an echo server).
	conn, err := svc.Forward(ctx, alice, "web", 8888)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Errorf("echo through the forward: %q %v", line, err)
	}
	_ = conn.Close()
	for _, port := range []int{0, -1, 65536} {
		if _, err := svc.Forward(ctx, alice, "web", port); !errors.Is(err, kube.ErrInvalid) {
			t.Errorf("forward to port %d: %v", port, err)
		}
	}
	if !hasAudit(readAudit(t, logPath), "alice", "pod forward", "alice/web:8888", "ok") {
		t.Error("forward not audited")
	}
}
