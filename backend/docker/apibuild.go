package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// docker build through the Docker API, with the engine's classic builder. The classic
// builder runs each RUN step in a container of its own and fetches what the Dockerfile
// names, so a build is policed before the engine sees it:
//
//   - The build's parameters are read against an allow-list: BuildKit sessions (version=2)
//     cannot be policed and are refused with the line to use the classic builder; so are a
//     remote context (the engine would fetch a URL), host or other networks, cgroup
//     parents, ulimits, security options and outputs.
//   - Tags go into the caller's own registry namespace only.
//   - The RUN containers get the user's own network, memory and CPU limits within the
//     quota (never privileged: the classic builder has no way to ask for that).
//   - The Dockerfile is read from the context before the build: every image it builds FROM
//     (or copies --from) must be on the server already or is pulled through the
//     ImageService's policy first, so the engine never pulls on its own; ADD of a URL is
//     refused (the engine would fetch it from the server's network).

// maxBuildContext bounds a build context; maxDockerfile a Dockerfile.
const (
	maxBuildContext = 4 << 30
	maxDockerfile   = 1 << 20
)

// buildParams are the build parameters the door understands; any other is refused.
var buildParams = []string{
	"t", "dockerfile", "q", "nocache", "rm", "forcerm", "pull", "buildargs", "labels", "cachefrom",
	"target", "platform", "extrahosts", "shmsize", "memory", "memswap", "cpushares", "cpuquota",
	"cpuperiod", "networkmode", "version", "isolation",
	// Sent, empty or off, by some clients; refused when they ask for something.
	"remote", "session", "buildid", "squash", "outputs", "cgroupparent", "ulimits", "securityopt", "cpusetcpus", "cpusetmems",
}

// buildLocks serialises one user's builds.
type buildLocks struct {
	mu   sync.Mutex
	busy map[string]bool
}

func (b *buildLocks) take(user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.busy == nil {
		b.busy = map[string]bool{}
	}
	if b.busy[user] {
		return false
	}
	b.busy[user] = true
	return true
}

func (b *buildLocks) give(user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.busy, user)
}

// buildPlan is a checked build request.
type buildPlan struct {
	opts       client.ImageBuildOptions
	dockerfile string
	pull       bool
	buildArgs  map[string]*string
}

// checkBuild reads the build parameters against the allow-list and the quota.
func (a *API) checkBuild(id backend.Identity, params map[string][]string) (buildPlan, error) {
	var p buildPlan
	one := func(k string) string {
		if vs := params[k]; len(vs) > 0 {
			return vs[len(vs)-1]
		}
		return ""
	}
	on := func(k string) bool { v := one(k); return v == "1" || v == "true" || v == "True" }
	for k, vs := range params {
		if !slices.Contains(buildParams, k) {
			return p, errorf(ErrPermission, "build parameter %s is not available on this server", shown(k))
		}
		if len(vs) > 64 {
			return p, errorf(ErrInvalid, "build parameter %s is given too often", shown(k))
		}
	}
	switch v := one("version"); v {
	case "", "1":
	case "2":
		return p, errorf(ErrPermission, "BuildKit builds (version=2) are not available on this server: its sessions cannot be policed; "+
			"build with the classic builder: DOCKER_BUILDKIT=0 docker build ...")
	default:
		return p, errorf(ErrInvalid, "invalid builder version %s", shown(v))
	}
	refusals := []struct{ param, flag, why string }{
		{"remote", "a URL or git context", "the server does not fetch build contexts; send a local directory"},
		{"session", "a build session", "sessions are BuildKit's; use the classic builder (DOCKER_BUILDKIT=0)"},
		{"outputs", "--output", "builds go into the server's images only"},
		{"cgroupparent", "--cgroup-parent", "the cgroup is the server's to choose"},
		{"securityopt", "--security-opt", "security options are the server's"},
		{"cpusetcpus", "--cpuset-cpus", "CPU placement is the server's"},
		{"cpusetmems", "--cpuset-mems", "memory placement is the server's"},
	}
	for _, r := range refusals {
		if one(r.param) != "" {
			return p, errorf(ErrPermission, "build %s (%s): %s", r.flag, r.param, r.why)
		}
	}
	if on("squash") {
		return p, errorf(ErrPermission, "build --squash: not available on this server")
	}
	if v := one("ulimits"); v != "" && v != "null" && v != "[]" {
		return p, errorf(ErrPermission, "build --ulimit (ulimits): limits are the server's")
	}
	if v := one("isolation"); v != "" && v != "default" {
		return p, errorf(ErrPermission, "build --isolation (isolation): only the default isolation is available")
	}
	switch v := one("networkmode"); v {
	case "", "default", "bridge":
	default:
		return p, errorf(ErrPermission, "build --network (networkmode): network %s is not available: build steps run on your own network", shown(v))
	}

	q := a.svc.cfg.quota(id.Role)
	num := func(k string) (int64, error) {
		v := one(k)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < -1 {
			return 0, errorf(ErrInvalid, "invalid build parameter %s=%s", k, shown(v))
		}
		return n, nil
	}
	mem, err := num("memory")
	if err != nil {
		return p, err
	}
	if mem > q.MaxMemory {
		return p, errorf(ErrQuota, "build --memory (memory): quota: at most %s per container for %s", formatBytes(q.MaxMemory), roleWord(id.Role))
	}
	if mem <= 0 {
		mem = min(a.svc.cfg.DefaultMemory, q.MaxMemory)
	}
	shm, err := num("shmsize")
	if err != nil {
		return p, err
	}
	if shm < 0 || shm > mem {
		return p, errorf(ErrQuota, "build --shm-size (shmsize): at most the memory limit, %s", formatBytes(mem))
	}
	cpuQuota, err := num("cpuquota")
	if err != nil {
		return p, err
	}
	cpuPeriod, err := num("cpuperiod")
	if err != nil {
		return p, err
	}
	cpus := min(a.svc.cfg.DefaultCPUs, q.MaxCPUs)
	if cpuQuota > 0 {
		if cpuPeriod <= 0 {
			cpuPeriod = 100000
		}
		cpus = float64(cpuQuota) / float64(cpuPeriod)
		if cpus > q.MaxCPUs {
			return p, errorf(ErrQuota, "build --cpu-quota (cpuquota): quota: at most %g CPUs for %s", q.MaxCPUs, roleWord(id.Role))
		}
	}
	const period = 100000
	if _, err := num("cpushares"); err != nil {
		return p, err
	}

	for _, t := range params["t"] {
		named, err := parseImageRef(t)
		if err != nil {
			return p, err
		}
		if _, ok := named.(reference.Digested); ok {
			return p, errorf(ErrInvalid, "build -t %s: a tag, not a digest", shown(t))
		}
		named = reference.TagNameOnly(named)
		if !ownNamespace(id, a.images.policy.ns, named) {
			return p, a.namespaceRefusal(id, "build -t", reference.FamiliarString(named))
		}
		p.opts.Tags = append(p.opts.Tags, named.String())
	}
	df := one("dockerfile")
	if df == "" {
		df = "Dockerfile"
	}
	if len(df) > 4096 || strings.ContainsRune(df, 0) || path.IsAbs(df) || strings.HasPrefix(path.Clean(df), "..") {
		return p, errorf(ErrInvalid, "build --file %s: the Dockerfile must be inside the build context", shown(df))
	}
	p.dockerfile = df
	var labels map[string]string
	if v := one("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &labels); err != nil || len(labels) > maxAPILabels {
			return p, errorf(ErrInvalid, "invalid build labels")
		}
	}
	for k := range labels {
		if strings.HasPrefix(k, "whalemountain.") || !apiLabelRE.MatchString(k) {
			delete(labels, k)
		}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range a.svc.cfg.Labels {
		labels[k] = v
	}
	labels[LabelOwner] = id.User // who built it; never read as ownership of the image
	if v := one("buildargs"); v != "" {
		if err := json.Unmarshal([]byte(v), &p.buildArgs); err != nil || len(p.buildArgs) > 128 {
			return p, errorf(ErrInvalid, "invalid build arguments")
		}
	}
	var cacheFrom []string
	if v := one("cachefrom"); v != "" {
		if err := json.Unmarshal([]byte(v), &cacheFrom); err != nil || len(cacheFrom) > 16 {
			return p, errorf(ErrInvalid, "invalid build cache-from")
		}
	}
	for _, h := range params["extrahosts"] {
		if len(h) > 512 || strings.ContainsAny(h, "\x00\n ") {
			return p, errorf(ErrInvalid, "invalid build --add-host %s", shown(h))
		}
	}
	target := one("target")
	if len(target) > 128 || strings.ContainsAny(target, "\x00\n ") {
		return p, errorf(ErrInvalid, "invalid build target")
	}
	p.pull = on("pull")
	p.opts.Dockerfile = df
	p.opts.SuppressOutput = on("q")
	p.opts.NoCache = on("nocache")
	p.opts.Remove = one("rm") != "0" && one("rm") != "false"
	p.opts.ForceRemove = on("forcerm")
	p.opts.BuildArgs = p.buildArgs
	p.opts.Labels = labels
	p.opts.CacheFrom = cacheFrom
	p.opts.ExtraHosts = params["extrahosts"]
	p.opts.Target = target
	p.opts.Memory = mem
	p.opts.MemorySwap = mem
	p.opts.ShmSize = shm
	p.opts.CPUPeriod = period
	p.opts.CPUQuota = int64(math.Round(cpus * period))
	p.opts.Version = build.BuilderV1
	return p, nil
}

// Build is POST /build with the classic builder: checked (checkBuild), the Dockerfile's
// images pulled through the policy when missing (or always, with pull), then built by the
// engine on the user's own network; each message of the build goes to emit. One build per
// user at a time. Audited as "build".
func (a *API) Build(ctx context.Context, id backend.Identity, params map[string][]string, buildContext io.Reader, emit func([]byte)) error {
	tags := strings.Join(params["t"], ",")
	err := a.build(ctx, id, params, buildContext, emit)
	a.svc.record(id, "build", shown(tags), err)
	return err
}

func (a *API) build(ctx context.Context, id backend.Identity, params map[string][]string, buildContext io.Reader, emit func([]byte)) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	p, err := a.checkBuild(id, params)
	if err != nil {
		return err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return err
	}
	if !a.builds.take(id.User) {
		return errorf(ErrConflict, "a build of yours is already running; wait for it to end")
	}
	defer a.builds.give(id.User)

	if a.spool != "" {
		if err := os.MkdirAll(a.spool, 0o700); err != nil {
			return fmt.Errorf("build: spool the context: %w", err)
		}
	}
	spool, err := os.CreateTemp(a.spool, "build-*.tar")
	if err != nil {
		return fmt.Errorf("build: spool the context: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	n, err := io.Copy(spool, io.LimitReader(buildContext, maxBuildContext+1))
	if err != nil {
		return errorf(ErrInvalid, "build: the build context could not be read")
	}
	if n > maxBuildContext {
		return errorf(ErrInvalid, "build: the build context is larger than %s", formatBytes(maxBuildContext))
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	content, err := findDockerfile(spool, p.dockerfile)
	if err != nil {
		return err
	}
	refs, err := scanDockerfile(content, p.buildArgs)
	if err != nil {
		return err
	}
	stream := func(s string) {
		js, _ := json.Marshal(map[string]string{"stream": s})
		emit(js)
	}
	for _, ref := range refs {
		if _, err := a.svc.localImage(ctx, ref); err == nil && !p.pull {
			continue
		}
		stream("Pulling " + ref + " through the server's image policy\n")
		if err := a.images.Pull(ctx, id, ref, func(pp PullProgress) { emit(progressJSON(pp)) }); err != nil {
			return err
		}
	}
	for _, ref := range refs {
		img, err := a.svc.localImage(ctx, ref)
		if err != nil {
			return err
		}
		if img.Config != nil {
			if err := checkOnBuild(img.Config.OnBuild); err != nil {
				return errorf(ErrPermission, "FROM %s: %s", ref, err.Error())
			}
		}
	}
	// The RUN steps run on the user's own network, by name (the classic builder's way).
	if _, err := a.svc.ensureNetwork(ctx, id.User); err != nil {
		return err
	}
	p.opts.NetworkMode = a.svc.cfg.networkName(id.User)
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return err
	}
	res, err := ae.ImageBuild(ctx, spool, p.opts)
	if err != nil {
		return apiErr("build", err)
	}
	defer res.Body.Close()
	return copyMessages(res.Body, emit)
}

// findDockerfile reads the Dockerfile at name (as the classic builder looks for it: that
// name, or "dockerfile" for the default) out of a build context tar.
func findDockerfile(r io.Reader, name string) ([]byte, error) {
	want := path.Clean(name)
	alt := ""
	if want == "Dockerfile" {
		alt = "dockerfile"
	}
	var altContent []byte
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errorf(ErrInvalid, "build: the build context is not a tar archive")
		}
		got := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if got != want && got != alt || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxDockerfile {
			return nil, errorf(ErrInvalid, "build: the Dockerfile is larger than %s", formatBytes(maxDockerfile))
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxDockerfile))
		if err != nil {
			return nil, errorf(ErrInvalid, "build: the build context could not be read")
		}
		if got == want {
			return b, nil
		}
		altContent = b
	}
	if altContent != nil {
		return altContent, nil
	}
	return nil, errorf(ErrInvalid, "Cannot locate specified Dockerfile: %s", shown(name))
}

// dfInstruction is one instruction of a Dockerfile: its keyword (upper case) and the rest.
type dfInstruction struct {
	cmd  string
	args string
}

// parseDockerfile splits a Dockerfile into instructions: parser directives (escape) read,
// comments dropped, continued lines joined.
func parseDockerfile(content []byte) []dfInstruction {
	lines := strings.Split(strings.ReplaceAll(string(content), "\r\n", "\n"), "\n")
	escape := `\`
	directives := true
	var out []dfInstruction
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		if i := strings.IndexAny(cmd, "\t"); i >= 0 {
			cmd, args = cmd[:i], cmd[i+1:]+" "+args
		}
		out = append(out, dfInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
	}
	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if directives {
			if d, ok := strings.CutPrefix(trimmed, "#"); ok {
				k, v, found := strings.Cut(d, "=")
				if found && strings.EqualFold(strings.TrimSpace(k), "escape") {
					if v = strings.TrimSpace(v); v == "`" || v == `\` {
						escape = v
					}
					continue
				}
			}
			directives = false
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment, also between continued lines
		}
		if t := strings.TrimRight(line, " \t"); strings.HasSuffix(t, escape) {
			cur.WriteString(strings.TrimSuffix(t, escape))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return out
}

var dfVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// scanDockerfile lists the images a Dockerfile builds from (FROM) or copies from
// (COPY --from), with the global build arguments substituted, and refuses what the
// engine would fetch by itself (ADD of a URL) and names it cannot resolve.
func scanDockerfile(content []byte, buildArgs map[string]*string) ([]string, error) {
	args := map[string]string{}
	stages := map[string]bool{}
	var refs []string
	seenFrom := false
	add := func(raw, what string) error {
		ref := dfVarRE.ReplaceAllStringFunc(raw, func(m string) string {
			sub := dfVarRE.FindStringSubmatch(m)
			name := sub[1] + sub[4]
			v, ok := args[name]
			switch sub[2] {
			case "-":
				if !ok || v == "" {
					return sub[3]
				}
			case "+":
				if ok && v != "" {
					return sub[3]
				}
				return ""
			}
			if !ok {
				return "\x00"
			}
			return v
		})
		if strings.ContainsAny(ref, "$\x00") {
			return errorf(ErrPermission, "%s %s: the image name must be known before the build (set it with --build-arg or an ARG default)", what, shown(raw))
		}
		if strings.EqualFold(ref, "scratch") || stages[strings.ToLower(ref)] {
			return nil
		}
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			return errorf(ErrInvalid, "%s %s: invalid image reference", what, shown(ref))
		}
		f := reference.FamiliarString(reference.TagNameOnly(named))
		if !slices.Contains(refs, f) {
			refs = append(refs, f)
		}
		return nil
	}
	for i, ins := range parseDockerfile(content) {
		fields := strings.Fields(ins.args)
		switch ins.cmd {
		case "ARG":
			if seenFrom {
				continue // stage arguments: not visible to FROM
			}
			for _, f := range fields {
				k, v, hasDefault := strings.Cut(f, "=")
				if ba, ok := buildArgs[k]; ok && ba != nil {
					args[k] = *ba
				} else if hasDefault {
					args[k] = strings.Trim(v, `"'`)
				}
			}
		case "FROM":
			seenFrom = true
			rest := slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--") })
			if len(rest) == 0 {
				return nil, errorf(ErrInvalid, "Dockerfile line %d: FROM needs an image", i+1)
			}
			if err := add(rest[0], "FROM"); err != nil {
				return nil, err
			}
			if len(rest) >= 3 && strings.EqualFold(rest[1], "AS") {
				stages[strings.ToLower(rest[2])] = true
			}
		case "COPY", "ADD":
			if err := checkCopy(ins, fields, add, stages); err != nil {
				return nil, err
			}
		case "ONBUILD":
			if err := checkOnBuild([]string{ins.args}); err != nil {
				return nil, err
			}
		}
	}
	if !seenFrom {
		return nil, errorf(ErrInvalid, "the Dockerfile has no FROM")
	}
	return refs, nil
}

// checkCopy checks a COPY or ADD: --from an image is one more image to check; ADD of a
// URL is refused.
func checkCopy(ins dfInstruction, fields []string, add func(raw, what string) error, stages map[string]bool) error {
	var srcs []string
	for i, f := range fields {
		if from, ok := strings.CutPrefix(f, "--from="); ok {
			if _, err := strconv.Atoi(from); err == nil || stages[strings.ToLower(from)] {
				continue
			}
			if err := add(from, ins.cmd+" --from"); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(f, "--") {
			continue
		}
		srcs = fields[i:]
		break
	}
	if ins.cmd != "ADD" {
		return nil
	}
	rest := strings.TrimSpace(strings.Join(srcs, " "))
	if strings.HasPrefix(rest, "[") {
		var arr []string
		if json.Unmarshal([]byte(rest), &arr) == nil {
			srcs = arr
		}
	}
	for _, s := range srcs {
		if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
			return errorf(ErrPermission, "ADD %s: the server does not fetch URLs for a build; download it into the build context and COPY it", shown(s))
		}
	}
	return nil
}

// checkOnBuild refuses ONBUILD triggers that would fetch: ADD of a URL, COPY --from an image.
func checkOnBuild(triggers []string) error {
	for _, t := range triggers {
		ins := parseDockerfile([]byte(t))
		for _, in := range ins {
			fields := strings.Fields(in.args)
			switch in.cmd {
			case "ADD", "COPY":
				err := checkCopy(in, fields, func(raw, what string) error {
					return errorf(ErrPermission, "ONBUILD %s %s: not allowed", what, shown(raw))
				}, map[string]bool{})
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}
