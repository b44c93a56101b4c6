package docker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"whalemountain/backend"
)

// LabelPreset is the course preset a container was made from ("" for none); set by the
// server on every create, like every label it reads.
const LabelPreset = "whalemountain.preset"

// Preset is a container a course offers ready-made: an image with its limits, GPUs,
// environment and command, for the roles named. A preset goes through the same checks as any
// run (name, image, quota, GPU policy): it is a RunSpec with a name, never a way around them.
type Preset struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Image       string   `json:"image"`
	CPUs        float64  `json:"cpus,omitempty"`
	Memory      int64    `json:"memory,omitempty"` // bytes
	GPUs        string   `json:"gpus,omitempty"`
	Env         []string `json:"env,omitempty"`
	Cmd         []string `json:"cmd,omitempty"`
	// Roles ("student", "ta") and Groups (GitLab group paths) say who may use it: a user of
	// one of the roles, or a member of one of the groups. Neither: everyone.
	Roles  []string `json:"roles,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// IdleExempt keeps its containers from idle stops; IdleAfter and GPUIdleAfter, when set,
	// replace the role's limits for them.
	IdleExempt   bool          `json:"idle_exempt,omitempty"`
	IdleAfter    time.Duration `json:"idle_after,omitempty"`
	GPUIdleAfter time.Duration `json:"gpu_idle_after,omitempty"`
}

// ValidatePresets checks presets as config: names unique and valid, images, environment,
// commands, GPUs and roles well formed.
func ValidatePresets(ps []Preset) error {
	seen := map[string]bool{}
	for i, p := range ps {
		where := fmt.Sprintf("presets[%d]", i)
		if err := ValidateName(p.Name); err != nil {
			return fmt.Errorf("%s.name: %w", where, err)
		}
		where = "presets." + p.Name
		if seen[p.Name] {
			return fmt.Errorf("%s: the name is used twice", where)
		}
		seen[p.Name] = true
		if _, err := ParseImage(p.Image); err != nil {
			return fmt.Errorf("%s.image: %w", where, err)
		}
		if err := ValidateEnv(p.Env); err != nil {
			return fmt.Errorf("%s.env: %w", where, err)
		}
		if err := validateCmd(p.Cmd); err != nil {
			return fmt.Errorf("%s.command: %w", where, err)
		}
		if _, _, err := ParseGPUs(p.GPUs); err != nil {
			return fmt.Errorf("%s.gpus: %w", where, err)
		}
		if p.IdleAfter < 0 || p.GPUIdleAfter < 0 {
			return fmt.Errorf("%s: idle_after and gpu_idle_after must not be negative", where)
		}
		if p.CPUs < 0 || p.Memory < 0 {
			return fmt.Errorf("%s: cpus and memory must not be negative", where)
		}
		if strings.ContainsFunc(p.Description, isControlRune) {
			return fmt.Errorf("%s.description: one line of plain text", where)
		}
		for _, r := range p.Roles {
			if !backend.Role(r).Valid() {
				return fmt.Errorf("%s.roles: %q is not a role (student, ta)", where, r)
			}
		}
		for _, g := range p.Groups {
			if !groupPathRE.MatchString(g) || strings.ContainsAny(g, "*?[]!^") ||
				slices.ContainsFunc(strings.Split(g, "/"), func(seg string) bool { return seg == "" || seg == "." || seg == ".." }) {
				return fmt.Errorf("%s.groups: %q is not a GitLab group path such as os-2026/team-a", where, g)
			}
		}
	}
	return nil
}

// SetPresets sets the course presets (validated). Call it before serving.
func (s *Service) SetPresets(ps []Preset) error {
	if err := ValidatePresets(ps); err != nil {
		return err
	}
	s.presets = slices.Clone(ps)
	return nil
}

// offered reports whether id may use p: by role, or as a member of one of its groups (asked
// of the group directory, which caches; without one, nobody is a member).
func (s *Service) offered(ctx context.Context, p Preset, id backend.Identity) bool {
	if len(p.Roles) == 0 && len(p.Groups) == 0 || slices.Contains(p.Roles, string(id.Role)) {
		return true
	}
	if s.groupDir == nil {
		return false
	}
	for _, g := range p.Groups {
		if ok, err := s.groupDir.IsMember(ctx, g, id.User); err == nil && ok {
			return true
		}
	}
	return false
}

// Presets are the presets id may use, in the configured order.
func (s *Service) Presets(ctx context.Context, id backend.Identity) []Preset {
	if checkIdentity(id) != nil {
		return nil
	}
	var out []Preset
	for _, p := range s.presets {
		if s.offered(ctx, p, id) {
			out = append(out, p)
		}
	}
	return out
}

// RunPreset creates and starts a container from the preset named preset, called name (""
// for one made from the image). A preset the identity's role is not offered is answered as
// one that does not exist.
func (s *Service) RunPreset(ctx context.Context, id backend.Identity, preset, name string) (Container, error) {
	i := slices.IndexFunc(s.presets, func(p Preset) bool { return p.Name == preset })
	if i < 0 || checkIdentity(id) != nil || !s.offered(ctx, s.presets[i], id) {
		err := errorf(ErrNotFound, "no preset %q for you; see presets", preset)
		s.recordNote(id, "run", id.User+"/"+shown(name), err, "preset "+preset)
		return Container{}, err
	}
	p := s.presets[i]
	spec := RunSpec{Name: name, Image: p.Image, Cmd: slices.Clone(p.Cmd), Env: slices.Clone(p.Env),
		CPUs: p.CPUs, Memory: p.Memory, GPUs: p.GPUs}
	var c Container
	err := s.gpuRunAllowed(spec.GPUs)
	if err == nil {
		c, err = s.run(ctx, id, &spec, p.Name)
	}
	s.recordNote(id, "run", id.User+"/"+shown(spec.Name), err, "preset "+p.Name)
	return c, err
}
