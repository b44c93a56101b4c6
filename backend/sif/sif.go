// Package sif exports a container image as a Singularity/Apptainer SIF file.
//
// The pipeline is streaming: image -> rootfs tar (a flat `docker export`) ->
// tar rewriter (adds the /.singularity.d metadata, the directories Apptainer binds
// onto, and drops what the engine adds to every container) -> tar2sqfs (squashfs) ->
// SIF (definition, inspect metadata and OCI config JSON, primary squashfs partition),
// laid out as `apptainer build x.sif docker-daemon:IMAGE` lays out its own. Nothing is
// extracted to disk; only the squashfs image is written to a temporary file next to
// the output, because the SIF writer needs its size up front.
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
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// LaunchScript is the SIF launch script Apptainer writes into its own images.
const LaunchScript = "#!/usr/bin/env run-singularity\n"

// ImageConfig is the part of the image config that ends up in the SIF.
// It is stored as oci-config.json with the field names of the OCI image config, which
// Apptainer's OCI bundles read (WorkingDir and User included).
type ImageConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
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
	im := image{cfg: cfg, source: opts.Source, arch: arch, built: time.Now()}
	dir := filepath.Dir(outPath)
	sq, err := os.CreateTemp(dir, ".sif-*.sqfs")
	if err != nil {
		return err
	}
	sqPath := sq.Name()
	sq.Close()
	defer os.Remove(sqPath)

	if err := squash(ctx, rootfs, im, opts.tar2sqfs(), sqPath); err != nil {
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
	if err := writeSIF(im, sqPath, tmpOut); err != nil {
		return err
	}
	return os.Rename(tmpOut, outPath)
}

// squash streams the rewritten rootfs into tar2sqfs, which writes sqPath.
func squash(ctx context.Context, rootfs io.Reader, im image, bin, sqPath string) error {
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
		err := rewriteTar(rootfs, pw, im)
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

// writeSIF lays the SIF out as Apptainer does: the definition, the JSON descriptors by
// name (inspect-metadata.json, oci-config.json), then the primary squashfs partition.
func writeSIF(im image, sqPath, outPath string) error {
	cfgJSON, err := json.Marshal(im.cfg)
	if err != nil {
		return err
	}
	inspectJSON, err := im.inspectMetadata()
	if err != nil {
		return err
	}
	def, err := sif.NewDescriptorInput(sif.DataDeffile, strings.NewReader(Definition(im.source)))
	if err != nil {
		return err
	}
	ins, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader(inspectJSON), sif.OptObjectName(InspectMetadataName))
	if err != nil {
		return err
	}
	js, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader(cfgJSON), sif.OptObjectName(OCIConfigName))
	if err != nil {
		return err
	}
	sq, err := os.Open(sqPath)
	if err != nil {
		return err
	}
	defer sq.Close()
	part, err := sif.NewDescriptorInput(sif.DataPartition, sq,
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, im.arch),
		sif.OptObjectAlignment(4096))
	if err != nil {
		return fmt.Errorf("sif: partition: %w", err)
	}
	f, err := sif.CreateContainerAtPath(outPath,
		sif.OptCreateWithLaunchScript(LaunchScript),
		sif.OptCreateWithTime(im.built),
		sif.OptCreateWithDescriptors(def, ins, js, part))
	if err != nil {
		return fmt.Errorf("sif: create: %w", err)
	}
	return f.UnloadContainer()
}

type genFile struct {
	name string
	mode int64
	data []byte
}

// generated are the files every image gets; they replace any of the same name.
func (im image) generated() ([]genFile, error) {
	labels, err := im.labelsJSON()
	if err != nil {
		return nil, err
	}
	files := []genFile{
		{".singularity.d/Singularity", 0o644, []byte(Definition(im.source))},
		{".singularity.d/labels.json", 0o644, labels},
		{".singularity.d/runscript", 0o755, []byte(Runscript(im.cfg.Entrypoint, im.cfg.Cmd, im.cfg.WorkingDir))},
		{".singularity.d/startscript", 0o755, []byte(startScript)},
		{".singularity.d/env/10-docker2singularity.sh", 0o755, []byte(EnvScript(im.cfg.Env))},
		// Empty, as Apptainer leaves them: the runtime binds the host's over them.
		{"etc/hosts", 0o644, nil},
		{"etc/resolv.conf", 0o644, nil},
	}
	for name, text := range envScripts {
		files = append(files, genFile{".singularity.d/env/" + name, 0o755, []byte(text)})
	}
	for _, a := range actionNames {
		files = append(files, genFile{".singularity.d/actions/" + a, 0o755, []byte(ActionScript(a))})
	}
	slices.SortFunc(files, func(a, b genFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// genDirs are the directories every image has, made where the rootfs lacks them:
// /.singularity.d's own and those Apptainer binds onto (without /var/tmp and /home every
// command warns that it cannot mount them).
var genDirs = []string{
	".singularity.d", ".singularity.d/actions", ".singularity.d/env", ".singularity.d/libs",
	"dev", "etc", "home", "proc", "root", "sys", "tmp", "var", "var/tmp",
}

// genLinks are the symbolic links of Apptainer's images, made where the rootfs has
// nothing of that name.
var genLinks = [][2]string{ // name, target
	{".exec", ".singularity.d/actions/exec"},
	{".run", ".singularity.d/actions/run"},
	{".shell", ".singularity.d/actions/shell"},
	{".test", ".singularity.d/actions/test"},
	{"environment", ".singularity.d/env/90-environment.sh"},
	{"singularity", ".singularity.d/runscript"},
}

// dropped are the files the engine adds to every container it makes: they are not the
// image's. (Its /etc/hosts and /etc/resolv.conf are replaced by generated files.)
var dropped = map[string]bool{".dockerenv": true, "etc/hostname": true}

// outside reports whether a tar entry's name (as cleanName leaves it) climbs out of the
// image's root. The engine's export never holds one; a stream that does is not trusted.
func outside(name string) bool {
	c := path.Clean(name)
	return c == ".." || strings.HasPrefix(c, "../")
}

func cleanName(n string) string {
	n = strings.TrimPrefix(n, "./")
	n = strings.TrimLeft(n, "/")
	return strings.TrimSuffix(n, "/")
}

// RewriteTar copies the tar in r to w, keeping every original entry except the files it
// generates itself (/.singularity.d's scripts, labels and definition, an empty /etc/hosts
// and /etc/resolv.conf) and the engine's /.dockerenv and /etc/hostname, then appends the
// generated files, and the directories and links of genDirs and genLinks where the
// rootfs has nothing of that name. source names the image, arch its architecture (both
// for the labels), built the build time.
func RewriteTar(r io.Reader, w io.Writer, cfg ImageConfig, source, arch string, built time.Time) error {
	return rewriteTar(r, w, image{cfg: cfg, source: source, arch: arch, built: built})
}

func rewriteTar(r io.Reader, w io.Writer, im image) error {
	files, err := im.generated()
	if err != nil {
		return err
	}
	replaced := map[string]bool{}
	for _, f := range files {
		replaced[f.name] = true
	}
	seen := map[string]byte{} // name -> tar type flag of the rootfs's entries
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
		if outside(name) || h.Typeflag == tar.TypeLink && outside(cleanName(h.Linkname)) {
			return fmt.Errorf("the image's filesystem names a path outside it: %q", h.Name)
		}
		if replaced[name] || dropped[name] {
			continue
		}
		seen[name] = h.Typeflag
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	// Beneath a name that is not a directory (a link, say) nothing is added.
	blocked := func(name string) bool {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if t, ok := seen[d]; ok && t != tar.TypeDir {
				return true
			}
		}
		return false
	}
	for _, d := range genDirs {
		if _, ok := seen[d]; ok || blocked(d) {
			continue
		}
		seen[d] = tar.TypeDir
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: im.built, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, l := range genLinks {
		if _, ok := seen[l[0]]; ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l[0], Linkname: l[1], Mode: 0o777, ModTime: im.built, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if blocked(f.name) {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: im.built, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}
