package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"whalemountain/backend"
)

// Idle culling: a running container nobody uses is stopped — never removed; the home and the
// container stay, and `start` brings it back. A container is idle while no session uses it
// (no shell, exec, attach, forward, sftp or Docker API session of its owner: SetSessionUse),
// its CPU stays under a threshold and its GPUs are unused. Any use resets the clock. The
// owner is warned (a notice, shown in the dashboard) a while before; then it is stopped,
// remembered as stopped by the server with the reason, and audited ("cull"). The policy is
// per role, a preset may lift it (exempt) or set its own limits, and a TA may keep one
// container from it for a time (`keep`, audited; kept in keeps.json under the state
// directory). The clock of idleness starts when the server first sees a container running:
// a restart never makes a stop come sooner.

// IdlePolicy says when a container counts as idle for too long.
type IdlePolicy struct {
	// After is how long a container may be idle; 0: never stopped for idleness.
	After time.Duration
	// GPUAfter is the same for a container holding GPUs (usually shorter); 0: After.
	GPUAfter time.Duration
	// CPUBelow is the CPU use, in percent of one CPU, under which it counts as idle.
	CPUBelow float64
	// GPUBelow is the GPU utilisation, in percent, under which a GPU counts as unused.
	GPUBelow float64
	// WarnBefore is how long before the stop the owner is warned.
	WarnBefore time.Duration
}

// DefaultIdlePolicy is the students' default: GPU containers after 2 hours idle, the others
// after a day, warned 30 minutes before.
func DefaultIdlePolicy() IdlePolicy {
	return IdlePolicy{After: 24 * time.Hour, GPUAfter: 2 * time.Hour, CPUBelow: 5, GPUBelow: 5, WarnBefore: 30 * time.Minute}
}

func (p IdlePolicy) validate(field string) error {
	switch {
	case p.After < 0 || p.GPUAfter < 0:
		return fmt.Errorf("%s: after and gpu_after must not be negative", field)
	case p.CPUBelow < 0 || p.GPUBelow < 0 || p.GPUBelow > 100:
		return fmt.Errorf("%s: cpu_below and gpu_below must be percentages", field)
	case p.WarnBefore < 0:
		return fmt.Errorf("%s: warn_before must not be negative", field)
	case p.After > 0 && p.WarnBefore >= p.After, p.GPUAfter > 0 && p.WarnBefore >= p.GPUAfter:
		return fmt.Errorf("%s: warn_before (%s) must be shorter than after and gpu_after", field, p.WarnBefore)
	}
	return nil
}

// limit is how long c may stay idle under p (0: forever).
func (p IdlePolicy) limit(gpus bool) time.Duration {
	if gpus && p.GPUAfter > 0 {
		return p.GPUAfter
	}
	return p.After
}

// Keep is a TA's exemption of one container from idle stops, until a time.
type Keep struct {
	Owner  string    `json:"owner"`
	Name   string    `json:"name"`
	Until  time.Time `json:"until"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
}

// idleState is what the culler knows of one running container.
type idleState struct {
	last   time.Time // last use seen
	warned time.Time // when the warning went out (zero: not warned)
	stopAt time.Time // when it is to be stopped, once warned
}

// Cull is one stop for idleness, for TAs.
type Cull struct {
	Owner  string    `json:"owner"`
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// culler is the idle culling's state. It is safe for concurrent use.
type culler struct {
	mu    sync.Mutex
	path  string                // keeps.json; "": memory only
	keeps map[string]Keep       // by owner/name
	state map[string]*idleState // by container ID
	roles map[string]backend.Role
	inUse func(owner, name string) bool
	culls []Cull // the latest, newest last
}

const maxCullsKept = 200

func (k *culler) load(path string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.path = path
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the keeps: %w", err)
	}
	var keeps map[string]Keep
	if err := json.Unmarshal(b, &keeps); err != nil {
		return fmt.Errorf("read the keeps %s: %w", path, err)
	}
	k.keeps = keeps
	return nil
}

func (k *culler) saveLocked() error {
	if k.path == "" {
		return nil
	}
	if err := saveJSON(k.path, k.keeps); err != nil {
		return fmt.Errorf("write the keeps: %w", err)
	}
	return nil
}

// SetSessionUse sets how the culler learns that a session uses a container (a shell, exec,
// attach, forward, sftp or Docker API session of the SSH door); nil: never.
func (s *Service) SetSessionUse(inUse func(owner, name string) bool) {
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	s.idle.inUse = inUse
}

// SetRoles tells the culler the roles of users it has not seen act (the config's TAs);
// anyone never seen counts as a student.
func (s *Service) SetRoles(roles map[string]backend.Role) {
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	for u, r := range roles {
		s.idle.roles[u] = r
	}
}

// noteRole remembers id's role, for the idle policy of their containers.
func (s *Service) noteRole(id backend.Identity) {
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	if s.idle.roles[id.User] != id.Role {
		s.idle.roles[id.User] = id.Role
	}
}

// idlePolicy is the policy for c: its preset's (exempt: none), else its owner's role's.
func (s *Service) idlePolicy(c Container, role backend.Role) (IdlePolicy, bool) {
	p := s.cfg.IdleStudent
	if role == backend.RoleTA {
		p = s.cfg.IdleTA
	}
	if c.Preset != "" {
		if i := slices.IndexFunc(s.presets, func(x Preset) bool { return x.Name == c.Preset }); i >= 0 {
			pr := s.presets[i]
			if pr.IdleExempt {
				return p, false
			}
			if pr.IdleAfter > 0 {
				p.After = pr.IdleAfter
			}
			if pr.GPUIdleAfter > 0 {
				p.GPUAfter = pr.GPUIdleAfter
			}
		}
	}
	return p, true
}

// Keep exempts a container from idle stops for d (a TA only; audited). d of 0 ends a keep.
func (s *Service) Keep(ctx context.Context, id backend.Identity, ref string, d time.Duration, reason string) (Keep, error) {
	reason, err := ValidateReason(reason)
	var t found
	if err == nil {
		err = checkIdentity(id)
	}
	if err == nil && !id.IsTA() {
		err = errorf(ErrPermission, "only TAs keep containers from idle stops")
	}
	if err == nil && (d < 0 || d > 90*24*time.Hour) {
		err = errorf(ErrInvalid, "--for must be between 0 and 90 days (got %s)", d)
	}
	if err == nil {
		t, err = s.find(ctx, id, ref)
	}
	var k Keep
	if err == nil {
		k = Keep{Owner: t.owner, Name: t.name, Until: s.now().Add(d).UTC(), By: id.User, Reason: reason}
		s.idle.mu.Lock()
		if d == 0 {
			delete(s.idle.keeps, t.owner+"/"+t.name)
		} else {
			s.idle.keeps[t.owner+"/"+t.name] = k
		}
		// A kept container's clock starts again.
		if st := s.idle.state[t.ID]; st != nil {
			*st = idleState{last: s.now()}
		}
		err = s.idle.saveLocked()
		s.idle.mu.Unlock()
	}
	s.recordNote(id, "keep", auditTarget(t, ref), err, strings.TrimSpace("for "+d.String()+" "+reason))
	if err == nil {
		s.pokeOwner(t.owner)
	}
	return k, err
}

// Keeps are the keeps in force, for TAs (a student: those of their own containers).
func (s *Service) Keeps(id backend.Identity) []Keep {
	if checkIdentity(id) != nil {
		return nil
	}
	now := s.now()
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	var out []Keep
	for _, k := range s.idle.keeps {
		if k.Until.After(now) && (id.IsTA() || k.Owner == id.User) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b Keep) int { return strings.Compare(a.Owner+"/"+a.Name, b.Owner+"/"+b.Name) })
	return out
}

// Culls are the latest stops for idleness (TAs: everyone's; students: their own), newest
// first.
func (s *Service) Culls(id backend.Identity) []Cull {
	if checkIdentity(id) != nil {
		return nil
	}
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	var out []Cull
	for i := len(s.idle.culls) - 1; i >= 0; i-- {
		if c := s.idle.culls[i]; id.IsTA() || c.Owner == id.User {
			out = append(out, c)
		}
	}
	return out
}

// IdleStop is when c is to be stopped for idleness, once its owner has been warned; zero
// otherwise.
func (s *Service) IdleStop(c Container) time.Time {
	s.idle.mu.Lock()
	defer s.idle.mu.Unlock()
	if st := s.idle.state[c.ID]; st != nil && !st.warned.IsZero() {
		return st.stopAt
	}
	return time.Time{}
}

// cull is one round of the idle culler.
func (s *Service) cull(ctx context.Context) {
	now := s.now()
	cs, _ := s.Snapshot(serverID, ListOptions{AllUsers: true})
	util := map[string]uint32{}
	for _, g := range s.gpuInventory() {
		util[g.UUID] = g.Util
	}
	s.idle.mu.Lock()
	inUse := s.idle.inUse
	s.idle.mu.Unlock()
	running := map[string]bool{}
	for _, c := range cs {
		if c.State != "running" {
			continue
		}
		running[c.ID] = true
		gpus := splitList(c.Labels[LabelGPUs])
		s.idle.mu.Lock()
		role := s.idle.roles[c.Owner]
		keep, kept := s.idle.keeps[c.Ref()]
		s.idle.mu.Unlock()
		p, applies := s.idlePolicy(c, role)
		limit := p.limit(len(gpus) > 0)
		used := inUse != nil && inUse(c.Owner, c.Name)
		if !c.StatsAt.IsZero() && c.CPUPercent >= p.CPUBelow {
			used = true
		}
		for _, u := range gpus {
			if g, ok := util[u]; ok && float64(g) >= p.GPUBelow {
				used = true
			}
		}
		s.idle.mu.Lock()
		st := s.idle.state[c.ID]
		if st == nil {
			st = &idleState{last: now}
			s.idle.state[c.ID] = st
		}
		if c.StartedAt.After(st.last) {
			st.last = c.StartedAt
		}
		wasWarned := !st.warned.IsZero()
		if used || !applies || limit == 0 || kept && keep.Until.After(now) {
			st.last, st.warned, st.stopAt = now, time.Time{}, time.Time{}
			s.idle.mu.Unlock()
			if wasWarned {
				s.pokeOwner(c.Owner)
			}
			continue
		}
		idleFor := now.Sub(st.last)
		warn := idleFor >= limit-p.WarnBefore && !wasWarned
		stop := wasWarned && idleFor >= limit && !now.Before(st.stopAt)
		if warn {
			st.warned = now
			st.stopAt = now.Add(max(p.WarnBefore, limit-idleFor))
		}
		stopAt := st.stopAt
		s.idle.mu.Unlock()
		switch {
		case warn:
			reason := fmt.Sprintf("idle for %s; it will be stopped (not removed) at %s unless you use it", roundDur(idleFor), stopAt.Local().Format("15:04"))
			_ = s.notices.addNotice(c.Owner, Notice{Container: c.Name, Action: NoticeIdleWarn, By: serverID.User, Reason: reason})
			s.recordNote(serverID, "idle-warn", c.Ref(), nil, reason)
			s.pokeOwner(c.Owner)
		case stop:
			reason := fmt.Sprintf("idle for %s (no session, CPU under %g%%, GPUs unused)", roundDur(idleFor), p.CPUBelow)
			s.serverStop(ctx, c, "cull", reason)
			s.idle.mu.Lock()
			delete(s.idle.state, c.ID)
			s.idle.culls = append(s.idle.culls, Cull{Owner: c.Owner, Name: c.Name, At: now.UTC(), Reason: reason})
			if len(s.idle.culls) > maxCullsKept {
				s.idle.culls = slices.Clone(s.idle.culls[len(s.idle.culls)-maxCullsKept:])
			}
			s.idle.mu.Unlock()
			s.pokeOwner("")
		}
	}
	s.idle.mu.Lock()
	for id := range s.idle.state {
		if !running[id] {
			delete(s.idle.state, id)
		}
	}
	for ref, k := range s.idle.keeps {
		if !k.Until.After(now) {
			delete(s.idle.keeps, ref)
			_ = s.idle.saveLocked()
		}
	}
	s.idle.mu.Unlock()
}

// roundDur is a duration as people read it: "2h0m", "45m", "30s".
func roundDur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return d.Round(time.Second).String()
}

func splitList(v string) []string {
	var out []string
	for u := range strings.SplitSeq(v, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// Schedule runs the waiting list's dispatcher, the hold limit and the idle culler every
// interval until ctx ends. The rounds cost no engine call while nothing waits and nothing
// is to be stopped (they read the live snapshot).
func (s *Service) Schedule(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.ScheduleRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScheduleRound is one round of Schedule.
func (s *Service) ScheduleRound(ctx context.Context) {
	s.dispatch(ctx)
	s.holdLimit(ctx)
	s.cull(ctx)
}
