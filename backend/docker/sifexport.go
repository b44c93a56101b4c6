package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/sif"
)

// SIF export: an image on the engine becomes a Singularity/Apptainer SIF file the user can
// download (read-only /sif in the file tree) and run on machines without Docker.
//
// A build makes (never starts) a container from the image, streams its flat filesystem
// export through backend/sif (tar rewriter -> tar2sqfs -> SIF writer) and removes the
// container. Only the squashfs image touches the disk, next to the result.
//
// Files live in Dir/<user>/<name>.sif, with what they were built from in
// Dir/<user>/.meta/<name>.json; builds in progress in Dir/<user>/.building. A SIF of an image
// ID that already exists (the user's own, under any name, or anyone's) is hard-linked rather
// than built again; reusing another user's file reads exactly like a fresh build.

// Defaults for SIFOptions.
const (
	DefaultSIFQuota  = 20 << 30 // bytes of SIF files per user
	DefaultSIFBuilds = 2        // builds running at once on the server
)

// LabelSIFExport marks the short-lived containers a SIF build exports; its value is the user.
const LabelSIFExport = "whalemountain.sif-export"

// SIFOptions configure SIF export.
type SIFOptions struct {
	// Dir holds every user's SIF files (created 0700 when missing).
	Dir string
	// Quota bounds the bytes of SIF files one user keeps; 0 means DefaultSIFQuota.
	Quota int64
	// MaxBuilds bounds the builds running at once on the server; others wait their turn.
	// 0 means DefaultSIFBuilds.
	MaxBuilds int
	// Tar2sqfs is the tar2sqfs binary; empty looks "tar2sqfs" up in PATH.
	Tar2sqfs string
}

// SIFFile is one SIF file a user keeps.
type SIFFile struct {
	Name    string    `json:"name"`     // "ubuntu_24.04.sif"
	Size    int64     `json:"size"`     // bytes
	Image   string    `json:"image"`    // the reference it was built from, "ubuntu:24.04"
	ImageID string    `json:"image_id"` // the image's ID, short: 12 hex digits
	Created time.Time `json:"created"`
}

// SIFProgress is one step of a build.
type SIFProgress struct {
	// Phase is "queued" (waiting for a build slot), "exporting" (reading the image's files
	// into the squashfs) or "writing" (wrapping the squashfs into the SIF).
	Phase string `json:"phase"`
	// Done and Total count the bytes of the image's files read so far and the image's size
	// while exporting (Done may pass Total: the size is the engine's estimate). Position is
	// the place in the queue while queued, 1 first.
	Done     int64 `json:"done,omitempty"`
	Total    int64 `json:"total,omitempty"`
	Position int   `json:"position,omitempty"`
}

// exportEngine is the part of the Docker SDK a SIF build uses beyond the engine interface.
type exportEngine interface {
	ContainerExport(ctx context.Context, id string, options client.ContainerExportOptions) (client.ContainerExportResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
}

var _ exportEngine = (*client.Client)(nil)

// SIFService builds, lists and removes users' SIF files. It is safe for concurrent use.
type SIFService struct {
	svc   *Service
	opts  SIFOptions
	tools error // why builds cannot run; nil when tar2sqfs is there

	slots   chan struct{} // one token per running build
	waiting atomic.Int32  // builds waiting for a slot

	mu       sync.Mutex
	building map[string]string // user -> image being built
	userMu   map[string]*sync.Mutex
}

// NewSIFService serves SIF files from opts.Dir for the images of svc. It creates the
// directory but does not contact Docker. A missing tar2sqfs is not an error here: builds
// are refused with ToolsError's message, and listing, downloads and removal still work.
func NewSIFService(svc *Service, opts SIFOptions) (*SIFService, error) {
	if opts.Dir == "" {
		return nil, errors.New("sif: no directory for SIF files")
	}
	if opts.Quota <= 0 {
		opts.Quota = DefaultSIFQuota
	}
	if opts.MaxBuilds <= 0 {
		opts.MaxBuilds = DefaultSIFBuilds
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("sif: create %s: %w", opts.Dir, err)
	}
	return &SIFService{svc: svc, opts: opts, tools: sif.CheckTools(opts.Tar2sqfs),
		slots: make(chan struct{}, opts.MaxBuilds), building: map[string]string{}, userMu: map[string]*sync.Mutex{}}, nil
}

// ToolsError says why SIF files cannot be built here (tar2sqfs missing), or nil.
func (ss *SIFService) ToolsError() error { return ss.tools }

// Quota is the bytes of SIF files one user may keep.
func (ss *SIFService) Quota() int64 { return ss.opts.Quota }

// Sweep removes what an interrupted build left behind: export containers of this server
// and unfinished files. Call it once at start-up, before any build.
func (ss *SIFService) Sweep(ctx context.Context) error {
	if dirs, err := filepath.Glob(filepath.Join(ss.opts.Dir, "*", ".building")); err == nil {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}
	ee, ok := ss.svc.api.(exportEngine)
	if !ok {
		return nil
	}
	// By value: the site's selectors, managed=true and kind=sif-export, all of which the server
	// writes on every create; an image's labels never make a user's container match.
	f := ss.svc.filters("")
	f.Add("label", LabelKind+"="+KindSIFExport)
	res, err := ee.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return engineErr("list SIF export containers", err)
	}
	res.Items = slices.DeleteFunc(res.Items, func(c container.Summary) bool {
		return !ss.svc.managedBy(c.Labels, "") || c.Labels[LabelKind] != KindSIFExport
	})
	for _, c := range res.Items {
		if _, err := ss.svc.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return engineErr("remove SIF export container", err)
		}
	}
	return nil
}

var sifNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,123}\.sif$`)

// ValidSIFName checks a SIF file name as users type it ("NAME.sif").
func ValidSIFName(name string) error {
	if !sifNameRE.MatchString(name) {
		return errorf(ErrInvalid, "invalid SIF file name %s: letters, digits, '.', '_', '-', ending in .sif", shown(name))
	}
	return nil
}

// SIFName is the file name a SIF of named gets: the last part of the repository path and
// the tag, "ubuntu_24.04.sif", "ml_latest.sif" for registry.example.org/alice/ml; a digest
// gives its first 12 hex digits instead of the tag. When the user already has a file by that
// name made from another reference, SIFFullName is used instead.
func SIFName(named reference.Named) string {
	return sifName(path.Base(reference.Path(named)), named)
}

// SIFFullName is SIFName with the whole repository path (without the registry and Docker
// Hub's "library/"), '/' as '_': "alice_proj_img_1.0.sif".
func SIFFullName(named reference.Named) string {
	return sifName(strings.TrimPrefix(reference.Path(named), "library/"), named)
}

func sifName(p string, named reference.Named) string {
	suffix := "latest"
	if d, ok := named.(reference.Digested); ok {
		suffix = shortID(d.Digest().Encoded())
	} else if t, ok := named.(reference.Tagged); ok {
		suffix = t.Tag()
	}
	name := strings.ReplaceAll(p, "/", "_") + "_" + suffix
	if len(name) > 120 {
		name = name[len(name)-120:]
		name = strings.TrimLeft(name, "._-")
	}
	return name + ".sif"
}

func (ss *SIFService) userDir(user string) string { return filepath.Join(ss.opts.Dir, user) }

func (ss *SIFService) lockUser(user string) func() {
	ss.mu.Lock()
	m, ok := ss.userMu[user]
	if !ok {
		m = &sync.Mutex{}
		ss.userMu[user] = m
	}
	ss.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// readMeta reads what name was built from; ok is false when the file or its record is missing.
func (ss *SIFService) readMeta(user, name string) (m sifMeta, ok bool) {
	data, err := os.ReadFile(filepath.Join(ss.userDir(user), ".meta", name+".json"))
	if err != nil || json.Unmarshal(data, &m) != nil {
		return m, false
	}
	return m, true
}

// sifMeta is the record kept next to a SIF file.
type sifMeta struct {
	Image   string    `json:"image"`
	ImageID string    `json:"image_id"` // full "sha256:..."
	Created time.Time `json:"created"`
}

func (ss *SIFService) writeMeta(user, name string, m sifMeta) error {
	dir := filepath.Join(ss.userDir(user), ".meta")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, _ := json.Marshal(m)
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name+".json"))
}

// List returns the caller's SIF files, by name.
func (ss *SIFService) List(ctx context.Context, id backend.Identity) ([]SIFFile, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(ss.userDir(id.User))
	if errors.Is(err, fs.ErrNotExist) {
		return []SIFFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list SIF files: %w", err)
	}
	out := []SIFFile{}
	for _, e := range ents {
		if !e.Type().IsRegular() || sifNameRE.FindString(e.Name()) == "" {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		f := SIFFile{Name: e.Name(), Size: fi.Size(), Created: fi.ModTime().UTC()}
		if m, ok := ss.readMeta(id.User, e.Name()); ok {
			f.Image, f.ImageID, f.Created = m.Image, shortID(m.ImageID), m.Created
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b SIFFile) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// used is the bytes of the user's SIF files, leaving out the one named except.
func (ss *SIFService) used(ctx context.Context, id backend.Identity, except string) (int64, error) {
	files, err := ss.List(ctx, id)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range files {
		if f.Name != except {
			n += f.Size
		}
	}
	return n, nil
}

// Open opens one of the caller's SIF files for reading. Someone else's name is the same
// "no SIF file" as a missing one.
func (ss *SIFService) Open(ctx context.Context, id backend.Identity, name string) (*os.File, SIFFile, error) {
	if err := checkIdentity(id); err != nil {
		return nil, SIFFile{}, err
	}
	if err := ValidSIFName(name); err != nil {
		return nil, SIFFile{}, errorf(ErrNotFound, "no SIF file named %s", shown(name))
	}
	f, err := os.Open(filepath.Join(ss.userDir(id.User), name))
	if err != nil {
		return nil, SIFFile{}, errorf(ErrNotFound, "no SIF file named %s", shown(name))
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, SIFFile{}, errorf(ErrNotFound, "no SIF file named %s", shown(name))
	}
	out := SIFFile{Name: name, Size: fi.Size(), Created: fi.ModTime().UTC()}
	if m, ok := ss.readMeta(id.User, name); ok {
		out.Image, out.ImageID, out.Created = m.Image, shortID(m.ImageID), m.Created
	}
	return f, out, nil
}

// Remove deletes one of the caller's SIF files. Audited as "sif rm".
func (ss *SIFService) Remove(ctx context.Context, id backend.Identity, name string) error {
	err := ss.remove(id, name)
	ss.svc.record(id, "sif rm", shown(name), err)
	return err
}

func (ss *SIFService) remove(id backend.Identity, name string) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	if err := ValidSIFName(name); err != nil {
		return err
	}
	defer ss.lockUser(id.User)()
	p := filepath.Join(ss.userDir(id.User), name)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return errorf(ErrNotFound, "no SIF file named %s", shown(name))
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove SIF file %s: %w", name, err)
	}
	_ = os.Remove(filepath.Join(ss.userDir(id.User), ".meta", name+".json"))
	return nil
}

// Build makes a SIF file of the image ref (a tag or digest of an image on this server) for
// the caller, calling progress (which may be nil) as it goes, one call at a time (not
// always from the calling goroutine; every call has returned when Build does).
// When the caller already has a SIF of the same image ID under that name, or any SIF of it
// exists on the server, no build runs: cached is true. One build per user at a time; at most
// MaxBuilds on the server, the others queue. The result must fit the user's quota. Audited
// as "sif".
func (ss *SIFService) Build(ctx context.Context, id backend.Identity, ref string, progress func(SIFProgress)) (out SIFFile, cached bool, err error) {
	out, cached, err = ss.build(ctx, id, ref, progress)
	target := shown(familiarRef(ref))
	if err == nil {
		target += " -> " + out.Name
	}
	ss.svc.record(id, "sif", target, err)
	return out, cached, err
}

func (ss *SIFService) build(ctx context.Context, id backend.Identity, ref string, progress func(SIFProgress)) (SIFFile, bool, error) {
	if progress == nil {
		progress = func(SIFProgress) {}
	}
	if err := checkIdentity(id); err != nil {
		return SIFFile{}, false, err
	}
	if err := ss.svc.admit(); err != nil {
		return SIFFile{}, false, err
	}
	named, err := parseImageRef(ref)
	if err != nil {
		return SIFFile{}, false, err
	}
	if ss.tools != nil {
		return SIFFile{}, false, errorf(ErrUnsupported, "SIF export is not available on this server: %v", ss.tools)
	}
	ee, ok := ss.svc.api.(exportEngine)
	if !ok {
		return SIFFile{}, false, errorf(ErrUnsupported, "SIF export is not supported by this Docker connection")
	}
	typed := reference.FamiliarString(reference.TagNameOnly(named))
	if _, digested := named.(reference.Digested); digested {
		typed = reference.FamiliarString(named)
	}
	img, err := ss.svc.localImage(ctx, typed)
	if err != nil {
		return SIFFile{}, false, err
	}
	name := SIFName(named)
	if m, ok := ss.readMeta(id.User, name); ok && m.Image != typed {
		name = SIFFullName(named) // the short name holds another image's file
	}

	// One build per user.
	ss.mu.Lock()
	if other, busy := ss.building[id.User]; busy {
		ss.mu.Unlock()
		return SIFFile{}, false, errorf(ErrConflict, "a SIF build of %s is already running for you; one at a time", other)
	}
	ss.building[id.User] = typed
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.building, id.User)
		ss.mu.Unlock()
	}()

	dir := ss.userDir(id.User)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SIFFile{}, false, fmt.Errorf("SIF directory: %w", err)
	}
	meta := sifMeta{Image: typed, ImageID: img.ID}

	// Already there, for this user under this name, or anywhere on the server.
	if m, ok := ss.readMeta(id.User, name); ok && m.ImageID == img.ID {
		if f, fi, err := ss.Open(ctx, id, name); err == nil {
			f.Close()
			return fi, true, nil
		}
	}
	used, err := ss.used(ctx, id, name)
	if err != nil {
		return SIFFile{}, false, err
	}
	if used >= ss.opts.Quota {
		return SIFFile{}, false, ss.quotaErr(used)
	}
	staging := filepath.Join(dir, ".building")
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return SIFFile{}, false, fmt.Errorf("SIF directory: %w", err)
	}
	tmp := filepath.Join(staging, name)
	defer os.Remove(tmp)
	if src := ss.findByImage(img.ID); src != "" && os.Link(src, tmp) == nil {
		// Reuse says nothing about other users: a file of someone else's reads exactly as
		// a fresh build (same steps, not "made before").
		own := filepath.Dir(src) == dir
		if !own {
			progress(SIFProgress{Phase: "exporting", Total: img.Size})
			progress(SIFProgress{Phase: "writing", Done: img.Size, Total: img.Size})
		}
		meta.Created = time.Now().UTC()
		f, err := ss.place(ctx, id, name, tmp, used, meta)
		return f, err == nil && own, err
	}

	// Wait for a build slot.
	select {
	case ss.slots <- struct{}{}:
	default:
		pos := int(ss.waiting.Add(1))
		progress(SIFProgress{Phase: "queued", Position: pos})
		select {
		case ss.slots <- struct{}{}:
			ss.waiting.Add(-1)
		case <-ctx.Done():
			ss.waiting.Add(-1)
			return SIFFile{}, false, fmt.Errorf("SIF of %s: %w", typed, ctx.Err())
		}
	}
	defer func() { <-ss.slots }()

	if err := ss.export(ctx, ee, id.User, img, typed, tmp, progress); err != nil {
		return SIFFile{}, false, err
	}
	meta.Created = time.Now().UTC()
	f, err := ss.place(ctx, id, name, tmp, used, meta)
	return f, false, err
}

func (ss *SIFService) quotaErr(used int64) error {
	return errorf(ErrQuota, "SIF quota reached: %s of %s used; remove a file with `sif rm NAME`",
		units.BytesSize(float64(used)), units.BytesSize(float64(ss.opts.Quota)))
}

// findByImage returns a SIF file of imageID anywhere on the server, or "".
func (ss *SIFService) findByImage(imageID string) string {
	metas, _ := filepath.Glob(filepath.Join(ss.opts.Dir, "*", ".meta", "*.sif.json"))
	for _, mp := range metas {
		data, err := os.ReadFile(mp)
		var m sifMeta
		if err != nil || json.Unmarshal(data, &m) != nil || m.ImageID != imageID {
			continue
		}
		p := filepath.Join(filepath.Dir(filepath.Dir(mp)), strings.TrimSuffix(filepath.Base(mp), ".json"))
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// place checks the finished file tmp against the quota and moves it to its name.
func (ss *SIFService) place(ctx context.Context, id backend.Identity, name, tmp string, usedBefore int64, meta sifMeta) (SIFFile, error) {
	defer ss.lockUser(id.User)()
	fi, err := os.Stat(tmp)
	if err != nil {
		return SIFFile{}, fmt.Errorf("SIF of %s: %w", meta.Image, err)
	}
	used, err := ss.used(ctx, id, name)
	if err != nil {
		return SIFFile{}, err
	}
	used = max(used, usedBefore)
	if used+fi.Size() > ss.opts.Quota {
		return SIFFile{}, errorf(ErrQuota, "the SIF of %s is %s: over your SIF quota (%s of %s used); remove a file with `sif rm NAME`",
			meta.Image, units.BytesSize(float64(fi.Size())), units.BytesSize(float64(used)), units.BytesSize(float64(ss.opts.Quota)))
	}
	if err := ss.writeMeta(id.User, name, meta); err != nil {
		return SIFFile{}, fmt.Errorf("SIF of %s: record: %w", meta.Image, err)
	}
	if err := os.Rename(tmp, filepath.Join(ss.userDir(id.User), name)); err != nil {
		return SIFFile{}, fmt.Errorf("SIF of %s: %w", meta.Image, err)
	}
	return SIFFile{Name: name, Size: fi.Size(), Image: meta.Image, ImageID: shortID(meta.ImageID), Created: meta.Created}, nil
}

// export makes a container of img (not started), streams its filesystem into a SIF at out,
// and removes the container.
func (ss *SIFService) export(ctx context.Context, ee exportEngine, user string, img client.ImageInspectResult, typed, out string, progress func(SIFProgress)) (err error) {
	// Made like every container (labels set by the server, hardened), never started, and of
	// kind sif-export: no lookup of a user's container ever resolves to it.
	id, err := ss.svc.createContainer(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:           img.ID,
			Entrypoint:      []string{"/.whalemountain-never-started"},
			NetworkDisabled: true,
		},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	}, objectLabels{kind: KindSIFExport, sifUser: user},
		limits{cpus: ss.svc.cfg.DefaultCPUs, memory: ss.svc.cfg.DefaultMemory},
		ss.svc.cfg.NamePrefix+"-sif-"+user+"-"+randomSuffix(6))
	if err != nil {
		return fmt.Errorf("SIF of %s: %w", typed, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = ss.svc.api.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true})
	}()
	exp, err := ee.ContainerExport(ctx, id, client.ContainerExportOptions{})
	if err != nil {
		return engineErr("SIF of "+typed+": export", err)
	}
	defer exp.Close()

	total := img.Size
	progress(SIFProgress{Phase: "exporting", Total: total})
	cr := &progressReader{r: exp, every: progressStep(total), tick: func(n int64) {
		progress(SIFProgress{Phase: "exporting", Done: n, Total: total})
	}}
	var cfg sif.ImageConfig
	if c := img.Config; c != nil {
		cfg = sif.ImageConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, Labels: c.Labels,
			WorkingDir: c.WorkingDir, User: c.User}
	}
	arch := img.Architecture
	opts := sif.Options{Tar2sqfs: ss.opts.Tar2sqfs, Source: typed, Squashed: func() {
		// The whole count, then the last step: the export has been read to its end.
		if cr.n != cr.reported {
			progress(SIFProgress{Phase: "exporting", Done: cr.n, Total: total})
		}
		progress(SIFProgress{Phase: "writing", Done: cr.n, Total: total})
	}}
	if err := sif.Build(ctx, cr, cfg, arch, out, opts); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("SIF of %s: %w", typed, ctx.Err())
		}
		return fmt.Errorf("SIF of %s: %w", typed, err)
	}
	return nil
}

// progressStep is how many bytes of an export of about total bytes go between two
// progress reports: about 2 % of it, at least 64 KiB and at most 4 MiB, so a small image
// shows its progress as a large one does.
func progressStep(total int64) int64 {
	return min(max(total/50, 64<<10), 4<<20)
}

// progressReader counts bytes read and calls tick every `every` bytes.
type progressReader struct {
	r        io.Reader
	n        int64
	every    int64
	next     int64
	reported int64 // the count of the last tick
	tick     func(int64)
}

func (c *progressReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.next {
		c.next = c.n + c.every
		c.reported = c.n
		c.tick(c.n)
	}
	return n, err
}
