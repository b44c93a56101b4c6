package docker

import (
	"math"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// The container create policy of a run: the checks and defaults that turn what a user
// typed (a RunSpec) into the engine's create options. Pure functions, so each rule has its
// own table test; the Docker API door (apicreate.go) shares the rules it applies the same
// way (the GPU request).

// runPlan is what planRun made of a RunSpec.
type runPlan struct {
	image string
	cpus  float64
	mem   int64
	gpuAsk
}

// gpuAsk is a checked --gpus request: any count GPUs, or those indices.
type gpuAsk struct {
	gpuCount   int
	gpuIndices []int
	nGPUs      int
	inv        []GPUInfo // the server's GPUs, asked only when nGPUs > 0
}

// askGPUs reads what the user typed for --gpus against the server's GPUs and the role's
// quota. inventory is called only when GPUs are asked for.
func askGPUs(gpus string, q Quota, role string, inventory func() []GPUInfo) (gpuAsk, error) {
	count, indices, err := ParseGPUs(gpus)
	if err != nil {
		return gpuAsk{}, err
	}
	a := gpuAsk{gpuCount: count, gpuIndices: indices, nGPUs: count + len(indices)}
	if a.nGPUs > 0 {
		a.inv = inventory()
	}
	if err := checkGPURequest(a.nGPUs, a.inv, q, role); err != nil {
		return gpuAsk{}, err
	}
	return a, nil
}

// checkRun checks everything the user typed in spec before anything is created.
func (s *Service) checkRun(id backend.Identity, spec *RunSpec) (runPlan, error) {
	if err := checkIdentity(id); err != nil {
		return runPlan{}, err
	}
	if err := s.admit(); err != nil {
		return runPlan{}, err
	}
	return planRun(spec, &s.cfg, id.Role, s.gpuInventory)
}

// planRun checks spec's name, image, environment and command, fills in the configured CPU
// and memory defaults and holds them and the GPUs to the role's quota.
func planRun(spec *RunSpec, cfg *Config, role backend.Role, inventory func() []GPUInfo) (runPlan, error) {
	if spec.Name != "" {
		if err := ValidateName(spec.Name); err != nil {
			return runPlan{}, err
		}
	}
	image, err := ParseImage(spec.Image)
	if err != nil {
		return runPlan{}, err
	}
	if err := ValidateEnv(spec.Env); err != nil {
		return runPlan{}, err
	}
	if err := validateCmd(spec.Cmd); err != nil {
		return runPlan{}, err
	}
	q := cfg.quota(role)
	cpus, mem := spec.CPUs, spec.Memory
	if cpus == 0 {
		cpus = cfg.DefaultCPUs
	}
	if mem == 0 {
		mem = cfg.DefaultMemory
	}
	switch {
	case cpus < 0.01 || math.IsNaN(cpus) || math.IsInf(cpus, 0):
		return runPlan{}, errorf(ErrInvalid, "invalid CPU limit %g: use a positive number such as 0.5 or 2", spec.CPUs)
	case mem < minMemory:
		return runPlan{}, errorf(ErrInvalid, "invalid memory limit %d bytes: at least %s", spec.Memory, formatBytes(minMemory))
	case cpus > q.MaxCPUs:
		return runPlan{}, errorf(ErrQuota, "quota: at most %g CPUs per container for %s (asked %g)", q.MaxCPUs, roleWord(role), cpus)
	case mem > q.MaxMemory:
		return runPlan{}, errorf(ErrQuota, "quota: at most %s memory per container for %s (asked %s)",
			formatBytes(q.MaxMemory), roleWord(role), formatBytes(mem))
	}
	gpus, err := askGPUs(spec.GPUs, q, roleWord(role), inventory)
	if err != nil {
		return runPlan{}, err
	}
	return runPlan{image: image, cpus: cpus, mem: mem, gpuAsk: gpus}, nil
}

// runCommand is the command a run starts: the one typed, else the image's own, except that
// an image whose own command is only a shell (or nothing) is kept alive instead, so the
// container stays up for shells. known says whether the image's config was read at all.
func runCommand(typed []string, known bool, entrypoint, imageCmd []string) []string {
	cmd := slices.Clone(typed)
	if len(cmd) == 0 && known && len(entrypoint) == 0 && onlyShell(imageCmd) {
		cmd = keepAlive
	}
	return cmd
}

// runEnv is the typed environment with HOME set to the home mount's target unless typed.
func runEnv(typed []string, home string) []string {
	env := slices.Clone(typed)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") }) {
		env = append(env, "HOME="+home)
	}
	return env
}

// runOptions are the create options of a run named name: an interactive terminal in the
// home mount, on the user's own network (netID, called netName) under its name. Labels,
// limits and hardening are createContainer's, GPUs the caller's.
func runOptions(name, image string, cmd, env []string, home mount.Mount, netID, netName string) client.ContainerCreateOptions {
	return client.ContainerCreateOptions{
		Config: &container.Config{
			Hostname:     name,
			Image:        image,
			Cmd:          cmd,
			Env:          env,
			WorkingDir:   home.Target,
			Tty:          true,
			OpenStdin:    true,
			AttachStdin:  true,
			AttachStdout: true,
			AttachStderr: true,
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(netID),
			Mounts:      []mount.Mount{home},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {NetworkID: netID, Aliases: []string{name}},
		}},
	}
}
