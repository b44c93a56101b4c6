package kube

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// endScript, run in a PID namespace the way a runtime runs an exec in a pod: the marked
// process entered the namespace from outside (parent PID 0 there), so did the script.
func TestEndScriptHangsUpTheMarkedProcessOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes a PID namespace with unshare and nsenter and needs root (as the Docker tests do)")
	}
	// A test started with SIGHUP ignored (nohup) would hand that on to the shell below, whose
	// trap could then not be set; handling it here makes the children start with the default.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	defer signal.Reset(syscall.SIGHUP)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The pod: PID 1 and a process of its own that also carries a marker of another exec.
	pod := exec.CommandContext(ctx, "unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
		"env "+execMarker+"=other sleep 60 & exec sleep 60")
	if err := pod.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	defer func() { _ = pod.Process.Kill(); _ = pod.Wait() }()
	// The namespace's PID 1 is the child of unshare.
	var init int
	for i := 0; i < 50 && init == 0; i++ {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pod.Process.Pid)).Output()
		init, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		time.Sleep(20 * time.Millisecond)
	}
	if init == 0 {
		t.Fatal("no init in the PID namespace")
	}
	enter := func(args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(init), "-p", "-m", "--"}, args...)...)
	}
	// The shell says when its trap is set, so the HUP below cannot come before it.
	shell := enter("env", execMarker+"=token", "sh", "-c", "trap 'exit 7' HUP; echo ready; sleep 60 & wait")
	ready, err := shell.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(ready).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("the marked shell did not start: %q %v", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- shell.Wait() }()
	run := func(sig string) string {
		t.Helper()
		out, err := enter("sh", "-c", endScript, "whalemountain-end", sig, execMarker+"=token").CombinedOutput()
		if err != nil {
			t.Fatalf("endScript %s: %v: %s", sig, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("0"); got != "alive" {
		t.Fatalf("look: %q, want alive", got)
	}
	if got := run("HUP"); got != "sent" {
		t.Fatalf("HUP: %q, want sent", got)
	}
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Errorf("the shell ended with %v, want its HUP trap's 7", err)
		}
	case <-ctx.Done():
		t.Fatal("the marked shell did not end on HUP")
	}
	if got := run("0"); got != "gone" {
		t.Errorf("after HUP: %q, want gone", got)
	}
	// Processes started inside the pod are never taken for the exec, markers or not.
	out, err := enter("sh", "-c", endScript, "whalemountain-end", "HUP", execMarker+"=other").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "gone" {
		t.Errorf("endScript for a process started inside the pod: %v %q, want gone", err, out)
	}
	if err := syscall.Kill(init, 0); err != nil {
		t.Errorf("the pod's PID 1 is gone: %v", err)
	}
}
