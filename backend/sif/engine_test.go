package sif_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/sylabs/sif/v2/pkg/sif"

	"whalemountain/backend/docker/dockertest"
	wmsif "whalemountain/backend/sif"
)

// TestBuildFromEngine exports a created busybox container from the real engine
// and builds a SIF from the stream.
func TestBuildFromEngine(t *testing.T) {
	if wmsif.CheckTools("") != nil {
		t.Fatal("tar2sqfs not installed: apt-get install squashfs-tools-ng")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	ref := dockertest.BusyboxImage(ctx, t, cli)
	ins, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var cfg wmsif.ImageConfig
	if c := ins.Config; c != nil {
		cfg = wmsif.ImageConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, Labels: c.Labels, WorkingDir: c.WorkingDir, User: c.User}
	}
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: ref, Labels: map[string]string{dockertest.LabelRun: dockertest.RunID()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	})
	exp, err := cli.ContainerExport(ctx, cr.ID, client.ContainerExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	out := filepath.Join(t.TempDir(), "busybox.sif")
	if err := wmsif.Build(ctx, exp, cfg, "amd64", out, wmsif.Options{Source: ref}); err != nil {
		t.Fatal(err)
	}
	f, err := sif.LoadContainerFromPath(out, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	defer f.UnloadContainer()
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		t.Fatal(err)
	}
	sq := filepath.Join(t.TempDir(), "p.sqfs")
	data, _ := part.GetData()
	if err := os.WriteFile(sq, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("rdsquashfs"); err != nil {
		t.Fatal("rdsquashfs not installed: apt-get install squashfs-tools-ng")
	}
	rs, err := exec.Command("rdsquashfs", "-c", "/.singularity.d/runscript", sq).Output()
	if err != nil || !strings.Contains(string(rs), "exec sh") {
		t.Errorf("runscript: %q %v", rs, err)
	}
	ls, err := exec.Command("rdsquashfs", "-l", "/bin", sq).Output()
	if err != nil || !strings.Contains(string(ls), "busybox") {
		t.Errorf("bin: %s %v", ls, err)
	}
	// What the engine adds to every container is not carried over; what Apptainer binds
	// onto is there; its empty /etc/hosts and /etc/resolv.conf are Apptainer's: 0644.
	entries := func(dir string) map[string]string { // name -> mode
		out, err := exec.Command("rdsquashfs", "-l", dir, sq).Output()
		if err != nil {
			t.Fatalf("rdsquashfs -l %s: %v", dir, err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) >= 4 {
				m[f[3]] = f[0]
			}
		}
		return m
	}
	root, etc, varDir := entries("/"), entries("/etc"), entries("/var")
	if _, ok := root[".dockerenv"]; ok {
		t.Errorf("/.dockerenv carried over: %v", root)
	}
	if _, ok := etc["hostname"]; ok {
		t.Errorf("/etc/hostname carried over: %v", etc)
	}
	if !strings.HasPrefix(root["home"], "d") || !strings.HasPrefix(varDir["tmp"], "d") {
		t.Errorf("no /home or /var/tmp: %v %v", root, varDir)
	}
	for _, f := range []string{"hosts", "resolv.conf"} {
		if etc[f] != "-rw-r--r--" {
			t.Errorf("/etc/%s: %q", f, etc[f])
		}
	}
}
