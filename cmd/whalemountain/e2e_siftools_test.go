package main

import (
	"context"
	"strings"
	"testing"

	"whalemountain/backend/docker/dockertest"
)

// TestE2ESIFWithoutTools: a server without tar2sqfs says so once at start, refuses builds
// with one clear line, and still lists (nothing).
func TestE2ESIFWithoutTools(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s := startContainerServer(t, cli, img, containerPrefix("w"), ctrOptions{Top: "images:\n  sif:\n    tar2sqfs: /nonexistent/tar2sqfs\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	s.waitLog(t, "SIF export is off until tar2sqfs is installed")
	if n := strings.Count(s.Log(), "SIF export is off"); n != 1 {
		t.Errorf("the start-up warning appears %d times", n)
	}
	r := s.run(t, alice, "alice", "sif", img)
	if r.Code != 1 || !strings.Contains(r.Stderr, "SIF export is not available on this server") ||
		!strings.Contains(r.Stderr, "apt-get install squashfs-tools-ng") || strings.Count(r.Stderr, "\n") != 1 || r.Stdout != "" {
		t.Errorf("sif without tar2sqfs: %s", r)
	}
	if out := s.mustRun(t, alice, "alice", "sif", "ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("sif ls: %q", out)
	}
	if n := strings.Count(s.Log(), "SIF export is off"); n != 1 {
		t.Errorf("the warning was repeated: %d times", n)
	}
}
