package main

// End-to-end test of the GPU waiting list through the real door (OpenSSH ssh, the dashboard
// read through the VT emulator). The server runs in this process, so that its NVML is
// go-nvml's mock with one GPU (the binary would load the real libnvidia-ml, which this
// machine lacks); the engine is the real one behind dockertest.GPUEngine, the proxy that
// takes the device requests out of creates (this engine has no NVIDIA runtime): the
// allocation, the labels and the hand-over are the server's own, as on a GPU machine.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	nvmlserver "github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// oneMockGPU is go-nvml's mock DGX A100 cut down to one idle GPU.
func oneMockGPU() nvml.Interface {
	srv := dgxa100.New()
	srv.Devices = srv.Devices[:1]
	dev := srv.Devices[0].(*nvmlserver.Device)
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.SUCCESS }
	dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 35, nvml.SUCCESS }
	dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 60_000, nvml.SUCCESS }
	return srv
}

// startInProcess serves cfgYAML (the docker section of a container test server added) in
// this process with lib as NVML, until the test ends.
func startInProcess(t *testing.T, cfgYAML string, lib nvml.Interface) *server {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "whalemountain.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	if err := cfg.loadFile(path); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg.Listen, cfg.DataDir = net.JoinHostPort("127.0.0.1", port), dataDir
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs), nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logger, lib) }()
	s := &server{t: t, Addr: cfg.Listen, Port: port, DataDir: dataDir, KeysDir: filepath.Join(dataDir, "keys"),
		stderr: logs, exited: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(stopTimeout + cfg.Limits.ShutdownGrace):
			t.Errorf("the server did not stop")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	if err := s.waitListening(startTimeout); err != nil {
		t.Fatalf("server did not start: %v\n%s", err, logs.String())
	}
	return s
}

func TestE2EWaitingList(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	host, asked := dockertest.GPUEngine(t)
	prefix := containerPrefix("g")
	labels := map[string]string{dockertest.LabelRun: dockertest.RunID(), dockertest.LabelService: prefix}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		if err := dockertest.Remove(ctx, cli, labels); err != nil {
			t.Errorf("remove the objects of %s: %v", prefix, err)
		}
	})
	yaml := fmt.Sprintf("tas: [tina]\ndocker:\n  host: %q\n  name_prefix: %s\n  stop_timeout: 2s\n  labels:\n    %s: %q\n    %s: %q\n",
		host, prefix, dockertest.LabelRun, dockertest.RunID(), dockertest.LabelService, prefix)
	s := &ctrServer{server: startInProcess(t, yaml, oneMockGPU()), cli: cli, img: img, prefix: prefix, labels: labels}
	alice, bob, carol, mallory, tina := newKey(t, "alice"), newKey(t, "bob"), newKey(t, "carol"), newKey(t, "mallory"), newKey(t, "tina")
	for u, k := range map[string]*testKey{"alice": alice, "bob": bob, "carol": carol, "mallory": mallory, "tina": tina} {
		s.addKey(t, u, k)
	}

	// alice takes the one GPU; carol, then bob, wait for it.
	if out := s.mustRun(t, alice, "alice", "run", "--name", "holder", "--gpus", "1", img); out != "holder: created and started (GPU 0)\n" {
		t.Fatalf("alice's run: %q", out)
	}
	if out := s.mustRun(t, carol, "carol", "run", "--name", "c1", "--gpus", "1", "--wait", "-d", img); !strings.HasPrefix(out, "c1: waiting for GPUs, 1st of 1 in line") {
		t.Fatalf("carol's run --wait -d: %q", out)
	}
	dash := s.openDashboard(t, bob, "bob", "student", 100, 30)
	waiter := s.openTerminal(t, bob, "bob", 100, 10, "run", "--name", "b1", "--gpus", "1", "--wait", img)
	waiter.waitText("b1: waiting for GPUs, 2nd of 2 in line")
	dash.waitText("b1 waits for GPUs (1): 2nd of 2 in line", "usage: 0 of 5 containers")

	// Nobody but bob and the TAs sees or touches bob's request.
	var seen []docker.Waiting
	if err := json.Unmarshal([]byte(s.mustRun(t, mallory, "mallory", "waiting", "--json")), &seen); err != nil || len(seen) != 0 {
		t.Errorf("mallory's waiting --json: %+v %v", seen, err)
	}
	for _, ref := range []string{"bob/b1", "carol/c1", "nobody/b1", "b1"} {
		r := s.run(t, mallory, "mallory", "waiting", "cancel", ref)
		if r.Code != 1 || r.Stderr != "error: no waiting request: "+ref+"\n" {
			t.Errorf("mallory cancels %s: %s", ref, r)
		}
	}
	if r := s.run(t, mallory, "mallory", "waiting", "move", "bob/b1", "--to", "1"); r.Code == 0 || !strings.Contains(r.Stderr, "only TAs move waiting requests") {
		t.Errorf("mallory moves bob's: %s", r)
	}
	if r := s.run(t, mallory, "mallory", "keep", "alice/holder", "--for", "48h"); r.Code == 0 || !strings.Contains(r.Stderr, "only TAs keep containers from idle stops") {
		t.Errorf("mallory keeps alice's: %s", r)
	}
	if out := s.mustRun(t, tina, "tina", "waiting"); !strings.Contains(out, "carol/c1") || !strings.Contains(out, "bob/b1") {
		t.Errorf("the TA's waiting:\n%s", out)
	}

	// carol gives up: bob moves up, in his waiting run and in his dashboard.
	s.mustRun(t, carol, "carol", "waiting", "cancel", "c1")
	waiter.waitText("b1: now 1st of 1 in line")
	dash.waitText("b1 waits for GPUs (1): 1st of 1 in line")

	// alice stops hers: bob's container is created and started with the GPU, and he is told.
	s.mustRun(t, alice, "alice", "stop", "holder")
	waiter.waitText("b1: created and started (GPU 0)")
	if code := waiter.waitExit(sshTimeout); code != 0 {
		t.Errorf("bob's run --wait exited %d", code)
	}
	dash.waitText("b1: created and started from the waiting list")
	dash.waitGone("waits for GPUs")
	var ps []docker.Container
	if err := json.Unmarshal([]byte(s.mustRun(t, bob, "bob", "ps", "--json")), &ps); err != nil || len(ps) != 1 || ps[0].Name != "b1" || ps[0].State != "running" || ps[0].GPUs != "0" {
		t.Errorf("bob's ps: %+v %v", ps, err)
	}
	if got := asked(); len(got) != 2 || strings.Join(got[0], ",") != strings.Join(got[1], ",") || len(got[0]) != 1 {
		t.Errorf("the GPU creates asked for %v: want the one GPU, twice", got)
	}
	dash.send("q")
	if code := dash.waitExit(sshTimeout); code != 0 {
		t.Errorf("dashboard exit %d", code)
	}
	// Audited: the wait, the cancel, the start from the list.
	var actions []string
	for _, e := range readAudit(t, s.auditPath()) {
		if strings.HasPrefix(e.Action, "wait") {
			actions = append(actions, e.User+" "+e.Action+" "+e.Target+" "+e.Result)
		}
	}
	for _, want := range []string{"carol wait carol/c1 ok", "bob wait bob/b1 ok", "carol wait-cancel carol/c1 ok",
		"mallory wait-cancel bob/b1 refused", "bob wait-start bob/b1 ok"} {
		if !strings.Contains(strings.Join(actions, "\n"), want) {
			t.Errorf("audit lacks %q:\n%s", want, strings.Join(actions, "\n"))
		}
	}
}
