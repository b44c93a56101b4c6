package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
)

type fakeSIFs struct {
	steps    []docker.SIFProgress
	result   docker.SIFFile
	cached   bool
	buildErr error
	list     []docker.SIFFile
	rmErr    map[string]error
	built    []string
	removed  []string
}

func (f *fakeSIFs) Build(_ context.Context, _ backend.Identity, ref string, progress func(docker.SIFProgress)) (docker.SIFFile, bool, error) {
	f.built = append(f.built, ref)
	for _, s := range f.steps {
		progress(s)
	}
	return f.result, f.cached, f.buildErr
}

func (f *fakeSIFs) List(context.Context, backend.Identity) ([]docker.SIFFile, error) {
	return f.list, nil
}

func (f *fakeSIFs) Remove(_ context.Context, _ backend.Identity, name string) error {
	if err := f.rmErr[name]; err != nil {
		return err
	}
	f.removed = append(f.removed, name)
	return nil
}

func (f *fakeSIFs) Quota() int64 { return 10 << 30 }

// runSIF runs args through Run with sifs as the SIF backend.
func runSIF(sifs SIFs, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := aliceEnv(&out, &errb)
	if sifs != nil {
		env.Deps.SIFs = sifs
	}
	code = Run(env, args)
	return code, out.String(), errb.String()
}

func TestSIFBuildOutput(t *testing.T) {
	const mib = 1 << 20
	f := &fakeSIFs{
		steps: []docker.SIFProgress{
			{Phase: "queued", Position: 2},
			{Phase: "exporting", Total: 100 * mib},
			{Phase: "exporting", Done: 4 * mib, Total: 100 * mib},
			{Phase: "exporting", Done: 8 * mib, Total: 100 * mib},
			{Phase: "exporting", Done: 12 * mib, Total: 100 * mib},
			{Phase: "exporting", Done: 56 * mib, Total: 100 * mib},
			{Phase: "exporting", Done: 120 * mib, Total: 100 * mib},
			{Phase: "writing", Done: 120 * mib, Total: 100 * mib},
		},
		result: docker.SIFFile{Name: "ubuntu_24.04.sif", Size: 30 * mib, Image: "ubuntu:24.04"},
	}
	code, out, errs := runSIF(f, "sif", "ubuntu:24.04")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := []string{
		"waiting for a free build slot (2 in line)",
		"exporting 0 B of about 100 MiB",
		"exporting 12 MiB of about 100 MiB",
		"exporting 56 MiB of about 100 MiB",
		"exporting 120 MiB of about 100 MiB",
		"writing the SIF file",
		"ubuntu_24.04.sif made (30 MiB)",
		"download: scp -P 2222 alice@gpu1:/sif/ubuntu_24.04.sif .",
	}
	if got := strings.Split(strings.TrimRight(out, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(f.built, []string{"ubuntu:24.04"}) {
		t.Errorf("built %v", f.built)
	}

	f = &fakeSIFs{result: docker.SIFFile{Name: "x_latest.sif", Size: 1024}, cached: true}
	_, out, _ = runSIF(f, "sif", "x")
	if !strings.Contains(out, "x_latest.sif ready (1.0 KiB, made before from the same image)") {
		t.Errorf("cached: %q", out)
	}
}

func TestSIFFailures(t *testing.T) {
	cases := []struct {
		name string
		args []string
		err  error
		code int
		want string
	}{
		{"quota", []string{"sif", "ubuntu"}, kindErr{docker.ErrQuota, "SIF quota reached: 10 GiB of 10 GiB used; remove a file with `sif rm NAME`"}, 1,
			"error: SIF quota reached: 10 GiB of 10 GiB used; remove a file with `sif rm NAME`"},
		{"no tools", []string{"sif", "ubuntu"}, kindErr{docker.ErrUnsupported, "SIF export is not available on this server: tar2sqfs not found: apt-get install squashfs-tools-ng"}, 1,
			"error: SIF export is not available on this server: tar2sqfs not found"},
		{"busy", []string{"sif", "ubuntu"}, kindErr{docker.ErrConflict, "a SIF build of ubuntu:24.04 is already running for you; one at a time"}, 1,
			"already running for you"},
		{"bad ref", []string{"sif", "Not A Ref"}, nil, 2, "error: invalid image reference"},
		{"no arg", []string{"sif"}, nil, 2, "sif needs an IMAGE"},
		{"two args", []string{"sif", "a", "b"}, nil, 2, "sif takes one IMAGE, not 2 arguments"},
		{"ls arg", []string{"sif", "ls", "x"}, nil, 2, `sif ls takes no arguments, not "x"`},
		{"rm none", []string{"sif", "rm"}, nil, 2, "sif rm needs at least one NAME"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeSIFs{buildErr: c.err}
			code, out, errs := runSIF(f, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("exit %d stderr %q, want %d and %q", code, errs, c.code, c.want)
			}
			if strings.Contains(out, "download:") {
				t.Errorf("stdout %q", out)
			}
			if c.code == 2 && len(f.built)+len(f.removed) != 0 {
				t.Errorf("bad usage reached the backend: %v %v", f.built, f.removed)
			}
		})
	}
	code, _, errs := runSIF(nil, "sif", "ls")
	if code != 1 || !strings.Contains(errs, "SIF export is not available") {
		t.Errorf("without docker: exit %d %q", code, errs)
	}
}

func TestSIFListAndRemove(t *testing.T) {
	now := time.Now()
	f := &fakeSIFs{list: []docker.SIFFile{
		{Name: "ubuntu_24.04.sif", Size: 30 << 20, Image: "ubuntu:24.04", ImageID: "aaaaaaaaaaaa", Created: now.Add(-3 * time.Hour)},
		{Name: "evil.sif", Size: 1 << 20, Image: "evil\x1b[2J:1"},
	}, rmErr: map[string]error{"nope.sif": kindErr{docker.ErrNotFound, "no SIF file named nope.sif"}}}
	code, out, _ := runSIF(f, "sif", "ls")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for i, want := range [][]string{
		{"NAME", "IMAGE", "IMAGE ID", "SIZE", "CREATED"},
		{"ubuntu_24.04.sif", "ubuntu:24.04", "aaaaaaaaaaaa", "30 MiB", "3h ago"},
		{"evil.sif", "–", "1.0 MiB"},
		{"31 MiB of 10 GiB used"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("raw escape reached the terminal")
	}
	_, out, _ = runSIF(f, "sif", "ls", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || got[0]["name"] != "ubuntu_24.04.sif" || got[0]["size"] != float64(30<<20) {
		t.Errorf("json %s %v", out, err)
	}
	_, out, _ = runSIF(&fakeSIFs{}, "sif", "ls", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list printed %q", out)
	}

	code, out, errs := runSIF(f, "sif", "rm", "ubuntu_24.04.sif", "nope.sif")
	if code != 1 || strings.TrimSpace(out) != "ubuntu_24.04.sif" || !strings.Contains(errs, "no SIF file named nope.sif") || !errors.Is(f.rmErr["nope.sif"], docker.ErrNotFound) {
		t.Errorf("rm: exit %d out %q err %q", code, out, errs)
	}
	if !slices.Equal(f.removed, []string{"ubuntu_24.04.sif"}) {
		t.Errorf("removed %v", f.removed)
	}
}

func TestSCPDownload(t *testing.T) {
	for prefix, want := range map[string]string{
		"ssh -p 2222 gpu1":    "scp -P 2222 gpu1:/sif/x.sif .",
		"ssh gpu1.example.jp": "scp gpu1.example.jp:/sif/x.sif .",
		"":                    "scp /sif/x.sif .",
	} {
		if got := format.SCPDownload(prefix, "/sif/x.sif"); got != want {
			t.Errorf("SCPDownload(%q) = %q, want %q", prefix, got, want)
		}
	}
}
