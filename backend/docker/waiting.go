package docker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// The GPU waiting list. `run --gpus N --wait` asks for a container that starts when GPUs are
// free: while the exclusive policy leaves too few, the request waits in a list ordered by
// fair share — the least GPU-hours held in a window first, then first come — with the places
// a TA moved requests to kept. A dispatcher (Service.Schedule) creates and starts the first
// request whose GPUs are free, through the same run as every other create, and tells the
// owner (a notice; their dashboard shows it). The list lives in one file under the data
// directory (waiting.json, 0600, written whole and renamed into place), so a restart keeps
// its owners and order. While requests wait, a plain GPU run is refused (it would jump the
// line), and, with a hold limit, containers that held their GPUs longer are warned and then
// stopped — never removed.

// WaitPolicy configures the waiting list.
type WaitPolicy struct {
	// Window is how far back the GPU-hours held count for the order; default 24h.
	Window time.Duration
	// MaxPerUser is how many requests one user may have waiting; default 1.
	MaxPerUser int
	// MaxHold, when positive, is how long a container may hold GPUs while others wait: then
	// it is warned, and HoldWarning later stopped (never removed).
	MaxHold time.Duration
	// HoldWarning is how long before the stop the owner is warned; default 15m.
	HoldWarning time.Duration
}

// DefaultWaitPolicy is the waiting list's default configuration.
func DefaultWaitPolicy() WaitPolicy {
	return WaitPolicy{Window: 24 * time.Hour, MaxPerUser: 1, HoldWarning: 15 * time.Minute}
}

func (w WaitPolicy) validate() error {
	switch {
	case w.Window <= 0:
		return fmt.Errorf("Waiting.Window must be positive (got %s)", w.Window)
	case w.MaxPerUser < 1 || w.MaxPerUser > 100:
		return fmt.Errorf("Waiting.MaxPerUser must be between 1 and 100 (got %d)", w.MaxPerUser)
	case w.MaxHold < 0:
		return fmt.Errorf("Waiting.MaxHold must not be negative (got %s)", w.MaxHold)
	case w.HoldWarning < 0 || w.MaxHold > 0 && w.HoldWarning >= w.MaxHold:
		return fmt.Errorf("Waiting.HoldWarning must be between 0 and MaxHold (got %s)", w.HoldWarning)
	}
	return nil
}

// Waiting is one waiting request as users see it.
type Waiting struct {
	Owner    string    `json:"owner"`
	Name     string    `json:"name"` // the container it becomes
	Image    string    `json:"image"`
	GPUs     string    `json:"gpus"` // as asked: "1", "0,2"
	Preset   string    `json:"preset,omitempty"`
	Since    time.Time `json:"since"`
	Position int       `json:"position"` // 1 is next
	Of       int       `json:"of"`       // requests waiting in all
	// HoursHeld is the owner's GPU-hours held in the window: what orders the list.
	HoursHeld float64 `json:"gpu_hours_held"`
	// Moved is the place a TA put it at (0: where fair share puts it).
	Moved int `json:"moved_to,omitempty"`
}

// Ref is how a TA names it: "owner/name".
func (w Waiting) Ref() string { return w.Owner + "/" + w.Name }

// waitEntry is one request as the file keeps it.
type waitEntry struct {
	Owner    string    `json:"owner"`
	Role     string    `json:"role"`
	Name     string    `json:"name"`
	Image    string    `json:"image"`
	Cmd      []string  `json:"cmd,omitempty"`
	Env      []string  `json:"env,omitempty"`
	CPUs     float64   `json:"cpus,omitempty"`
	Memory   int64     `json:"memory,omitempty"`
	GPUs     string    `json:"gpus"`
	Preset   string    `json:"preset,omitempty"`
	Since    time.Time `json:"since"`
	Seq      int64     `json:"seq"`                // first come, first served among equals
	Pin      int       `json:"pin,omitempty"`      // the place a TA moved it to
	PinnedAt time.Time `json:"pinned_at,omitzero"` // when (later moves go after earlier ones)
}

func (e waitEntry) identity() backend.Identity {
	return backend.Identity{User: e.Owner, Role: backend.Role(e.Role)}
}

func (e waitEntry) spec() RunSpec {
	return RunSpec{Name: e.Name, Image: e.Image, Cmd: slices.Clone(e.Cmd), Env: slices.Clone(e.Env), CPUs: e.CPUs, Memory: e.Memory, GPUs: e.GPUs}
}

// waitFile is the file's content.
type waitFile struct {
	Next    int64       `json:"next"`
	Entries []waitEntry `json:"entries"`
}

// waitList is the list, kept in memory and in its file. It is safe for concurrent use.
type waitList struct {
	mu     sync.Mutex
	path   string // "": memory only
	f      waitFile
	order  []string             // owner/name in the last order computed, to notice changes
	warned map[string]time.Time // container ID -> when the hold warning was sent
}

func (w *waitList) saveLocked() error {
	if w.path == "" {
		return nil
	}
	if err := saveJSON(w.path, w.f); err != nil {
		return fmt.Errorf("write the waiting list: %w", err)
	}
	return nil
}

// saveJSON writes v as JSON to path whole: into a temporary file beside it (0600), renamed
// into place, so a reader or a crash never sees half of it.
func saveJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return nil
}

// SetStateDir keeps the waiting list and the TAs' keeps in dir (created 0700), so they
// outlive the server process, and reads what is there. Call it before serving.
func (s *Service) SetStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	w := &s.waiting
	path := filepath.Join(dir, "waiting.json")
	var f waitFile
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("read the waiting list %s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("read the waiting list: %w", err)
	}
	f.Entries = slices.DeleteFunc(f.Entries, func(e waitEntry) bool {
		return !backend.ValidUser(e.Owner) || !nameRE.MatchString(e.Name) || !backend.Role(e.Role).Valid()
	})
	w.mu.Lock()
	w.path, w.f = path, f
	w.mu.Unlock()
	return s.idle.load(filepath.Join(dir, "keeps.json"))
}

// SetFairShare sets where the waiting list learns each user's GPU-hours held since a time
// (the ledger of backend/gpuhours); nil: everyone counts 0, and the list is first come.
func (s *Service) SetFairShare(held func(since time.Time) map[string]float64) {
	s.waiting.mu.Lock()
	defer s.waiting.mu.Unlock()
	s.fairShare = held
}

// orderWaiting is the order of the list: fair share (least GPU-hours held first, then first
// come) for the requests nobody moved; the ones a TA moved at their places, earlier moves
// first.
func orderWaiting(es []waitEntry, held map[string]float64) []waitEntry {
	var free, pinned []waitEntry
	for _, e := range es {
		if e.Pin > 0 {
			pinned = append(pinned, e)
		} else {
			free = append(free, e)
		}
	}
	slices.SortStableFunc(free, func(a, b waitEntry) int {
		return cmp.Or(cmp.Compare(held[a.Owner], held[b.Owner]), a.Since.Compare(b.Since), cmp.Compare(a.Seq, b.Seq))
	})
	slices.SortStableFunc(pinned, func(a, b waitEntry) int {
		return cmp.Or(a.PinnedAt.Compare(b.PinnedAt), cmp.Compare(a.Seq, b.Seq))
	})
	out := free
	for _, p := range pinned {
		i := min(p.Pin-1, len(out))
		out = slices.Insert(out, i, p)
	}
	return out
}

// heldInWindow is every user's GPU-hours held in the window.
func (s *Service) heldInWindow() map[string]float64 {
	s.waiting.mu.Lock()
	fair := s.fairShare
	s.waiting.mu.Unlock()
	if fair == nil {
		return map[string]float64{}
	}
	return fair(s.now().Add(-s.cfg.Waiting.Window))
}

// ordered is the list in its order now.
func (s *Service) ordered() []waitEntry {
	held := s.heldInWindow()
	s.waiting.mu.Lock()
	defer s.waiting.mu.Unlock()
	return orderWaiting(slices.Clone(s.waiting.f.Entries), held)
}

// WaitingList is the waiting list as id may see it: a student their own requests (with
// their places in the whole list), a TA every one. In order.
func (s *Service) WaitingList(id backend.Identity) []Waiting {
	if checkIdentity(id) != nil {
		return nil
	}
	held := s.heldInWindow()
	s.waiting.mu.Lock()
	es := orderWaiting(slices.Clone(s.waiting.f.Entries), held)
	s.waiting.mu.Unlock()
	var out []Waiting
	for i, e := range es {
		if !id.IsTA() && e.Owner != id.User {
			continue
		}
		out = append(out, Waiting{Owner: e.Owner, Name: e.Name, Image: e.Image, GPUs: e.GPUs, Preset: e.Preset,
			Since: e.Since, Position: i + 1, Of: len(es), HoursHeld: held[e.Owner], Moved: e.Pin})
	}
	return out
}

// noWaiting is the one error for a waiting request that does not exist or is not id's.
func noWaiting(typed string) error {
	return errorf(ErrNotFound, "no waiting request: %s", shown(typed))
}

// findWaitingLocked resolves what id typed ("box", a TA's "alice/box") to an index.
func (s *Service) findWaitingLocked(id backend.Identity, ref string) (int, error) {
	t, err := parseRef(id, ref)
	if err != nil {
		return -1, noWaiting(ref)
	}
	i := slices.IndexFunc(s.waiting.f.Entries, func(e waitEntry) bool { return e.Owner == t.owner && e.Name == t.name })
	if i < 0 {
		return -1, noWaiting(ref)
	}
	return i, nil
}

// CancelWaiting takes a waiting request off the list: a student's own, or any for a TA
// (reason is then why; the owner is told). It is audited.
func (s *Service) CancelWaiting(id backend.Identity, ref, reason string) error {
	reason, err := ValidateReason(reason)
	target := shown(ref)
	var owner, name string
	if err == nil {
		err = checkIdentity(id)
	}
	if err == nil {
		s.waiting.mu.Lock()
		var i int
		i, err = s.findWaitingLocked(id, ref)
		if err == nil {
			e := s.waiting.f.Entries[i]
			owner, name, target = e.Owner, e.Name, e.Owner+"/"+e.Name
			if owner != id.User { // told first: whoever sees it gone finds why
				_ = s.notices.addNotice(owner, Notice{Container: name, Action: NoticeWaitCancel, By: id.User, ByRole: string(id.Role), Reason: reason})
			}
			s.waiting.f.Entries = slices.Delete(s.waiting.f.Entries, i, i+1)
			err = s.waiting.saveLocked()
		}
		s.waiting.mu.Unlock()
	}
	s.recordNote(id, "wait-cancel", target, err, reason)
	if err == nil {
		s.pokeWaiting()
	}
	return err
}

// MoveWaiting puts a waiting request at place pos (1 is next) for a TA; it stays there
// while fair share orders the others around it. It is audited.
func (s *Service) MoveWaiting(id backend.Identity, ref string, pos int, reason string) error {
	reason, err := ValidateReason(reason)
	target := shown(ref)
	if err == nil {
		err = checkIdentity(id)
	}
	if err == nil && !id.IsTA() {
		err = errorf(ErrPermission, "only TAs move waiting requests")
	}
	if err == nil && (pos < 1 || pos > 10000) {
		err = errorf(ErrInvalid, "the place must be a number from 1")
	}
	if err == nil {
		s.waiting.mu.Lock()
		var i int
		i, err = s.findWaitingLocked(id, ref)
		if err == nil {
			e := &s.waiting.f.Entries[i]
			target = e.Owner + "/" + e.Name
			e.Pin, e.PinnedAt = pos, s.now().UTC()
			err = s.waiting.saveLocked()
		}
		s.waiting.mu.Unlock()
	}
	s.recordNote(id, "wait-move", target, err, strings.TrimSpace(fmt.Sprintf("to %d %s", pos, reason)))
	if err == nil {
		s.pokeWaiting()
	}
	return err
}

// pokeWaiting wakes the dashboards of everyone waiting (their places may have changed) and
// the TAs'.
func (s *Service) pokeWaiting() {
	owners := map[string]bool{}
	s.waiting.mu.Lock()
	for _, e := range s.waiting.f.Entries {
		owners[e.Owner] = true
	}
	for _, r := range s.waiting.order {
		o, _, _ := strings.Cut(r, "/")
		owners[o] = true
	}
	s.waiting.mu.Unlock()
	s.live.mu.Lock()
	s.live.notifyLocked(owners)
	s.live.mu.Unlock()
}

// errGPUsBusy marks a refusal because the GPUs asked for are held by others: a request with
// --wait waits instead.
type errGPUsBusy struct{ error }

func (e errGPUsBusy) Unwrap() error { return e.error }

func gpusBusy(err error) bool {
	var b errGPUsBusy
	return errors.As(err, &b)
}

// RunOrWait runs spec for id when its GPUs are free and nobody waits; otherwise the request
// joins the waiting list (everything about it checked first, as for a run) and the place it
// got is returned. preset is the course preset it comes from ("": none).
func (s *Service) RunOrWait(ctx context.Context, id backend.Identity, spec RunSpec, preset string) (Container, *Waiting, error) {
	var (
		c   Container
		w   *Waiting
		err error
	)
	if preset != "" {
		i := slices.IndexFunc(s.presets, func(p Preset) bool { return p.Name == preset })
		if i < 0 || checkIdentity(id) != nil || !s.offered(ctx, s.presets[i], id) {
			err = errorf(ErrNotFound, "no preset %q for you; see presets", preset)
		} else {
			p := s.presets[i]
			spec = RunSpec{Name: spec.Name, Image: p.Image, Cmd: slices.Clone(p.Cmd), Env: slices.Clone(p.Env),
				CPUs: p.CPUs, Memory: p.Memory, GPUs: p.GPUs}
		}
	}
	if err == nil {
		c, w, err = s.runOrWait(ctx, id, &spec, preset)
	}
	action, note := "run", "wait"
	if preset != "" {
		note += ", preset " + preset
	}
	if w != nil {
		action = "wait"
	}
	s.recordNote(id, action, id.User+"/"+shown(spec.Name), err, note)
	return c, w, err
}

func (s *Service) runOrWait(ctx context.Context, id backend.Identity, spec *RunSpec, preset string) (Container, *Waiting, error) {
	plan, err := s.checkRun(id, spec)
	if err != nil {
		return Container{}, nil, err
	}
	if plan.nGPUs == 0 {
		return Container{}, nil, errorf(ErrInvalid, "--wait is for GPUs: add --gpus N")
	}
	s.waiting.mu.Lock()
	queued := len(s.waiting.f.Entries) > 0
	s.waiting.mu.Unlock()
	if !queued {
		c, err := s.run(ctx, id, spec, preset)
		if err == nil || !gpusBusy(err) {
			return c, nil, err
		}
	}
	lock := s.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()
	mine, err := s.ownContainers(ctx, id.User)
	if err != nil {
		return Container{}, nil, err
	}
	names, err := s.createRoom(id, mine, spec.Name, true)
	if err != nil {
		return Container{}, nil, err
	}
	if _, err := s.localImage(ctx, plan.image); err != nil {
		return Container{}, nil, err
	}
	e, err := s.enqueue(id, spec, plan.image, preset, names)
	if err != nil {
		return Container{}, nil, err
	}
	s.pokeWaiting()
	for _, w := range s.WaitingList(id) {
		if w.Name == e.Name {
			return Container{}, &w, nil
		}
	}
	// Taken off meanwhile (cancelled, or started already).
	return Container{}, &Waiting{Owner: e.Owner, Name: e.Name, Image: e.Image, GPUs: e.GPUs, Since: e.Since}, nil
}

// enqueue adds the request to the list, within the per-user limit; names are the owner's
// containers' names.
func (s *Service) enqueue(id backend.Identity, spec *RunSpec, image, preset string, names map[string]bool) (waitEntry, error) {
	s.waiting.mu.Lock()
	defer s.waiting.mu.Unlock()
	n := 0
	for _, e := range s.waiting.f.Entries {
		if e.Owner != id.User {
			continue
		}
		n++
		names[e.Name] = true
	}
	if max := s.cfg.Waiting.MaxPerUser; n >= max {
		plural := "s"
		if max == 1 {
			plural = ""
		}
		return waitEntry{}, errorf(ErrQuota, "quota: at most %d waiting request%s per user (see waiting)", max, plural)
	}
	if spec.Name == "" {
		spec.Name = generateName(image, names)
	} else if names[spec.Name] {
		return waitEntry{}, errorf(ErrConflict, "container %s already exists or is waiting", spec.Name)
	}
	s.waiting.f.Next++
	e := waitEntry{Owner: id.User, Role: string(id.Role), Name: spec.Name, Image: image, Cmd: slices.Clone(spec.Cmd),
		Env: slices.Clone(spec.Env), CPUs: spec.CPUs, Memory: spec.Memory, GPUs: spec.GPUs, Preset: preset,
		Since: s.now().UTC(), Seq: s.waiting.f.Next}
	s.waiting.f.Entries = append(s.waiting.f.Entries, e)
	if err := s.waiting.saveLocked(); err != nil {
		s.waiting.f.Entries = s.waiting.f.Entries[:len(s.waiting.f.Entries)-1]
		return waitEntry{}, err
	}
	return e, nil
}

// gpuRunAllowed refuses a plain run with GPUs while requests wait: it would take GPUs ahead
// of them.
func (s *Service) gpuRunAllowed(gpus string) error {
	if strings.TrimSpace(gpus) == "" {
		return nil
	}
	return s.othersWait()
}

// othersWait refuses a plain GPU run while requests wait: it would take GPUs ahead of them.
func (s *Service) othersWait() error {
	s.waiting.mu.Lock()
	n := len(s.waiting.f.Entries)
	s.waiting.mu.Unlock()
	if n == 0 {
		return nil
	}
	are := "requests wait"
	if n == 1 {
		are = "request waits"
	}
	return errGPUsBusy{errorf(ErrConflict, "%d %s for GPUs; add --wait to join the waiting list", n, are)}
}

// freeFor reports whether the GPUs e asks for look free in the live snapshot (the run
// itself checks again with the engine).
func (s *Service) freeFor(e waitEntry, inv []GPUInfo) bool {
	count, indices, err := ParseGPUs(e.GPUs)
	if err != nil {
		return false
	}
	taken := map[string]bool{}
	s.live.mu.Lock()
	for _, c := range s.live.items {
		switch container.ContainerState(c.State) {
		case container.StateRunning, container.StateRestarting, container.StatePaused, container.StateCreated:
			for u := range strings.SplitSeq(c.Labels[LabelGPUs], ",") {
				if u = strings.TrimSpace(u); u != "" {
					taken[u] = true
				}
			}
		}
	}
	s.live.mu.Unlock()
	_, err = ChooseGPUs(inv, taken, count, indices, s.cfg.GPUPolicy)
	return err == nil
}

// dispatch starts waiting requests, in order, while their GPUs are free: the first whose
// GPUs are busy stops the round (nobody jumps ahead of it). A request that can no longer be
// run (its image gone, the owner's quota full, the name taken) is dropped, and its owner
// told why.
func (s *Service) dispatch(ctx context.Context) {
	inv := s.gpuInventory()
	es := s.ordered()
	s.noteOrder(es)
	for _, e := range es {
		if ctx.Err() != nil || !s.freeFor(e, inv) {
			return
		}
		spec := e.spec()
		id := e.identity()
		_, err := s.run(ctx, id, &spec, e.Preset)
		if gpusBusy(err) {
			return
		}
		if errors.Is(err, ErrUnavailable) {
			return // the engine is away: try again later
		}
		// The owner is told before the request leaves the list: whoever sees it gone finds
		// the notice saying why.
		n := Notice{Container: e.Name, Action: NoticeWaitStart, By: "whalemountain"}
		if err != nil {
			n.Action, n.Reason = NoticeWaitFail, err.Error()
		}
		_ = s.notices.addNotice(e.Owner, n)
		s.waiting.mu.Lock()
		s.waiting.f.Entries = slices.DeleteFunc(s.waiting.f.Entries, func(x waitEntry) bool { return x.Seq == e.Seq })
		_ = s.waiting.saveLocked()
		s.waiting.mu.Unlock()
		s.recordNote(id, "wait-start", e.Owner+"/"+e.Name, err, "from the waiting list")
		s.pokeWaiting()
	}
}

// noteOrder remembers the order and wakes the dashboards when it changed (fair share moves
// requests as GPU-hours leave the window).
func (s *Service) noteOrder(es []waitEntry) {
	refs := make([]string, len(es))
	for i, e := range es {
		refs[i] = e.Owner + "/" + e.Name
	}
	s.waiting.mu.Lock()
	same := slices.Equal(refs, s.waiting.order)
	s.waiting.order = refs
	s.waiting.mu.Unlock()
	if !same {
		s.pokeWaiting()
	}
}

// holdLimit warns, and then stops, containers that held GPUs longer than MaxHold while
// requests wait. Stopped, never removed: `start` brings them back when GPUs are free.
func (s *Service) holdLimit(ctx context.Context) {
	p := s.cfg.Waiting
	s.waiting.mu.Lock()
	waiting := len(s.waiting.f.Entries) > 0
	if !waiting {
		clear(s.waiting.warned)
	}
	s.waiting.mu.Unlock()
	if p.MaxHold <= 0 || !waiting {
		return
	}
	now := s.now()
	cs, _ := s.Snapshot(serverID, ListOptions{AllUsers: true})
	for _, c := range cs {
		if c.State != string(container.StateRunning) || c.Labels[LabelGPUs] == "" || c.StartedAt.IsZero() {
			continue
		}
		held := now.Sub(c.StartedAt)
		if held < p.MaxHold-p.HoldWarning {
			continue
		}
		s.waiting.mu.Lock()
		warnedAt, warned := s.waiting.warned[c.ID]
		if !warned {
			s.waiting.warned[c.ID] = now
		}
		s.waiting.mu.Unlock()
		if !warned {
			stopAt := c.StartedAt.Add(p.MaxHold)
			if stopAt.Before(now.Add(p.HoldWarning)) {
				stopAt = now.Add(p.HoldWarning)
			}
			_ = s.notices.addNotice(c.Owner, Notice{Container: c.Name, Action: NoticeHoldWarn, By: "whalemountain",
				Reason: fmt.Sprintf("others wait for GPUs; it will be stopped (not removed) at %s", stopAt.Local().Format("15:04"))})
			s.recordNote(serverID, "hold-warn", c.Ref(), nil, "held GPUs for "+held.Round(time.Minute).String())
			s.pokeOwner(c.Owner)
			continue
		}
		if held < p.MaxHold || now.Sub(warnedAt) < p.HoldWarning {
			continue
		}
		reason := fmt.Sprintf("held GPUs longer than %s while others waited", p.MaxHold)
		s.serverStop(ctx, c, "hold-stop", reason)
		s.waiting.mu.Lock()
		delete(s.waiting.warned, c.ID)
		s.waiting.mu.Unlock()
	}
}

// serverID is the identity the server acts as on its own (the dispatcher, the culler).
var serverID = backend.Identity{User: "whalemountain", Role: backend.RoleTA}

// serverStop stops c on the server's own decision: remembered as stopped on purpose (by the
// server, with reason), the owner told, audited as action.
func (s *Service) serverStop(ctx context.Context, c Container, action, reason string) {
	_, err := s.api.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: s.stopTimeout()})
	err = engineErr("stop container "+c.Ref(), err)
	if err == nil {
		info := StopInfo{By: serverID.User, Reason: reason}
		ins, ierr := s.api.ContainerInspect(context.WithoutCancel(ctx), c.ID, client.ContainerInspectOptions{})
		if ierr == nil && ins.Container.State != nil && ins.Container.State.Status == container.StateExited {
			if started := parseTime(ins.Container.State.StartedAt); !started.IsZero() {
				_ = s.notices.recordStop(c.Owner, c.ID, started, info)
			}
		}
		_ = s.notices.addNotice(c.Owner, Notice{Container: c.Name, Action: "stop", By: serverID.User, Reason: reason})
		s.pokeOwner(c.Owner)
	}
	s.recordNote(serverID, action, c.Ref(), err, reason)
}
