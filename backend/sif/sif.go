// Package sif exports a container image as a Singularity/Apptainer SIF file.
//
// The pipeline is streaming: image -> rootfs tar (a flat `docker export`) ->
// tar rewriter (adds the /.singularity.d metadata) -> tar2sqfs (squashfs) ->
// SIF (definition, OCI config JSON, primary squashfs partition). Nothing is
// extracted to disk; only the squashfs image is written to a temporary file
// next to the output, because the SIF writer needs its size up front.
package sif

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// LaunchScript is the SIF launch script Apptainer writes into its own images.
const LaunchScript = "#!/usr/bin/env run-singularity\n"

// ImageConfig is the part of the image config that ends up in the SIF.
type ImageConfig struct {
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// Options tune Build.
type Options struct {
	// Tar2sqfs is the tar2sqfs binary (default "tar2sqfs", looked up in PATH).
	Tar2sqfs string
	// Source names the image in the definition text (default "image").
	Source string
	// Squashed, when set, is called once the whole filesystem is in the squashfs image,
	// before the SIF is written.
	Squashed func()
}

func (o Options) tar2sqfs() string {
	if o.Tar2sqfs == "" {
		return "tar2sqfs"
	}
	return o.Tar2sqfs
}

// CheckTools reports whether tar2sqfs (path, or "tar2sqfs" when empty) can be run.
func CheckTools(path string) error {
	if path == "" {
		path = "tar2sqfs"
	}
	if _, err := exec.LookPath(path); err != nil {
		return fmt.Errorf("tar2sqfs not found: apt-get install squashfs-tools-ng (%v)", err)
	}
	return nil
}

// Build writes a SIF file at outPath from the flat rootfs tar read from rootfs.
// The file is written under a temporary name and renamed into place on success.
func Build(ctx context.Context, rootfs io.Reader, cfg ImageConfig, arch, outPath string, opts Options) (err error) {
	if err := CheckTools(opts.tar2sqfs()); err != nil {
		return err
	}
	if arch == "" {
		arch = "amd64"
	}
	dir := filepath.Dir(outPath)
	sq, err := os.CreateTemp(dir, ".sif-*.sqfs")
	if err != nil {
		return err
	}
	sqPath := sq.Name()
	sq.Close()
	defer os.Remove(sqPath)

	if err := squash(ctx, rootfs, cfg, opts.tar2sqfs(), sqPath); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.Squashed != nil {
		opts.Squashed()
	}

	tmpOut := outPath + ".partial"
	defer func() {
		if err != nil {
			os.Remove(tmpOut)
		}
	}()
	if err := writeSIF(cfg, arch, opts, sqPath, tmpOut); err != nil {
		return err
	}
	return os.Rename(tmpOut, outPath)
}

// squash streams the rewritten rootfs into tar2sqfs, which writes sqPath.
func squash(ctx context.Context, rootfs io.Reader, cfg ImageConfig, bin, sqPath string) error {
	pr, pw := io.Pipe()
	cmd := exec.CommandContext(ctx, bin, "-c", "gzip", "-q", "-f", sqPath)
	cmd.Stdin = pr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	cmd.WaitDelay = 5 * time.Second // a child tar2sqfs left behind cannot hold Wait
	if err := cmd.Start(); err != nil {
		pr.Close()
		return fmt.Errorf("sif: start %s: %w", bin, err)
	}
	rwErr := make(chan error, 1)
	go func() {
		err := RewriteTar(rootfs, pw, cfg)
		pw.CloseWithError(err)
		rwErr <- err
	}()
	waitErr := cmd.Wait()
	pr.CloseWithError(errors.New("tar2sqfs exited")) // unblock the rewriter if tar2sqfs quit early
	if err := <-rwErr; err != nil && waitErr == nil {
		return fmt.Errorf("sif: rewrite rootfs: %w", err)
	} else if err != nil && !errors.Is(err, io.ErrClosedPipe) && !strings.Contains(err.Error(), "tar2sqfs exited") {
		return fmt.Errorf("sif: rewrite rootfs: %w (tar2sqfs: %v: %s)", err, waitErr, strings.TrimSpace(stderr.String()))
	}
	if waitErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("sif: %s: %v: %s", bin, waitErr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func writeSIF(cfg ImageConfig, arch string, opts Options, sqPath, outPath string) error {
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	def, err := sif.NewDescriptorInput(sif.DataDeffile, strings.NewReader(Definition(opts.Source)))
	if err != nil {
		return err
	}
	js, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader(cfgJSON), sif.OptObjectName("oci-config.json"))
	if err != nil {
		return err
	}
	sq, err := os.Open(sqPath)
	if err != nil {
		return err
	}
	defer sq.Close()
	part, err := sif.NewDescriptorInput(sif.DataPartition, sq,
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, arch),
		sif.OptObjectAlignment(4096))
	if err != nil {
		return fmt.Errorf("sif: partition: %w", err)
	}
	f, err := sif.CreateContainerAtPath(outPath,
		sif.OptCreateWithLaunchScript(LaunchScript),
		sif.OptCreateWithTime(time.Now()),
		sif.OptCreateWithDescriptors(def, js, part))
	if err != nil {
		return fmt.Errorf("sif: create: %w", err)
	}
	return f.UnloadContainer()
}

// Definition is the small definition text stored in the SIF's deffile descriptor.
func Definition(source string) string {
	if source == "" {
		source = "image"
	}
	return "bootstrap: docker-daemon\nfrom: " + source + "\n"
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// Runscript builds /.singularity.d/runscript with OCI semantics: arguments
// replace Cmd, Entrypoint is always the prefix; /bin/sh when both are empty.
func Runscript(entrypoint, cmd []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	switch {
	case len(entrypoint) > 0:
		fmt.Fprintf(&b, "if [ $# -gt 0 ]; then\n  exec %s \"$@\"\nfi\n", quoteAll(entrypoint))
		if len(cmd) > 0 {
			fmt.Fprintf(&b, "exec %s %s\n", quoteAll(entrypoint), quoteAll(cmd))
		} else {
			fmt.Fprintf(&b, "exec %s\n", quoteAll(entrypoint))
		}
	default:
		b.WriteString("if [ $# -gt 0 ]; then\n  exec \"$@\"\nfi\n")
		if len(cmd) > 0 {
			fmt.Fprintf(&b, "exec %s\n", quoteAll(cmd))
		} else {
			b.WriteString("exec /bin/sh\n")
		}
	}
	return b.String()
}

// EnvScript builds /.singularity.d/env/90-environment.sh exporting env
// ("KEY=value" entries; entries with invalid names are skipped).
func EnvScript(env []string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !validName(k) {
			continue
		}
		fmt.Fprintf(&b, "export %s=%s\n", k, ShellQuote(v))
	}
	return b.String()
}

func validName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

type genFile struct {
	name string
	mode int64
	data []byte
}

func generated(cfg ImageConfig) ([]genFile, error) {
	labels := cfg.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lj, err := json.MarshalIndent(labels, "", "  ")
	if err != nil {
		return nil, err
	}
	files := []genFile{
		{".singularity.d/runscript", 0o755, []byte(Runscript(cfg.Entrypoint, cfg.Cmd))},
		{".singularity.d/env/90-environment.sh", 0o755, []byte(EnvScript(cfg.Env))},
		{".singularity.d/labels.json", 0o644, append(lj, '\n')},
	}
	for _, a := range actionNames {
		files = append(files, genFile{".singularity.d/actions/" + a, 0o755, []byte(ActionScript(a))})
	}
	return files, nil
}

// actionNames are the action scripts an image carries for runtimes that run them from the
// image (older Singularity releases); newer ones bring their own.
var actionNames = []string{"exec", "run", "shell", "start", "test"}

// ActionScript is /.singularity.d/actions/<action>: load the image's environment, then do
// what the action means.
func ActionScript(action string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\nfor f in /.singularity.d/env/*.sh; do\n  [ -f \"$f\" ] && . \"$f\"\ndone\n")
	switch action {
	case "exec":
		b.WriteString("exec \"$@\"\n")
	case "run":
		b.WriteString("[ -x /.singularity.d/runscript ] && exec /.singularity.d/runscript \"$@\"\n" +
			"echo \"no runscript in this image: running /bin/sh\" >&2\nexec /bin/sh \"$@\"\n")
	case "shell":
		b.WriteString("if [ -n \"${SINGULARITY_SHELL:-}\" ]; then exec \"$SINGULARITY_SHELL\" \"$@\"; fi\n" +
			"[ -x /bin/bash ] && exec /bin/bash \"$@\"\nexec /bin/sh \"$@\"\n")
	case "start":
		b.WriteString("[ -x /.singularity.d/startscript ] && exec /.singularity.d/startscript \"$@\"\nexit 0\n")
	case "test":
		b.WriteString("[ -x /.singularity.d/test ] && exec /.singularity.d/test \"$@\"\n" +
			"echo \"no test script in this image\" >&2\nexit 0\n")
	}
	return b.String()
}

var genDirs = []string{".singularity.d", ".singularity.d/env", ".singularity.d/actions", ".singularity.d/libs"}

func cleanName(n string) string {
	n = strings.TrimPrefix(n, "./")
	n = strings.TrimLeft(n, "/")
	return strings.TrimSuffix(n, "/")
}

// RewriteTar copies the tar in r to w, keeping every original entry except
// the files it generates itself, and appends the /.singularity.d entries
// (directories only where the rootfs lacks them).
func RewriteTar(r io.Reader, w io.Writer, cfg ImageConfig) error {
	files, err := generated(cfg)
	if err != nil {
		return err
	}
	replaced := map[string]bool{}
	for _, f := range files {
		replaced[f.name] = true
	}
	seenDirs := map[string]bool{}
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := cleanName(h.Name)
		if replaced[name] {
			continue
		}
		if h.Typeflag == tar.TypeDir {
			seenDirs[name] = true
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	now := time.Now()
	dirs := append([]string(nil), genDirs...)
	sort.Strings(dirs)
	for _, d := range dirs {
		if seenDirs[d] {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}
