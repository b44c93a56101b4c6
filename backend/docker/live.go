package docker

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Health says whether the live snapshot is current. When OK is false, Snapshot keeps
// answering with the last known list and Err says why ("Docker unreachable: " + Err).
type Health struct {
	OK    bool      `json:"ok"`
	Err   string    `json:"error,omitempty"`
	Since time.Time `json:"since"`
}

// Timings of the watcher.
const (
	coalesce      = 100 * time.Millisecond // events are folded into one resync at most this often
	backoffMin    = 200 * time.Millisecond
	backoffMax    = 5 * time.Second
	resyncEvery   = time.Minute // a full resync even without events, for the "Up ..." texts
	resyncWait    = time.Minute // bound on one resync: an engine that hangs is noticed
	sampleEvery   = 2 * time.Second
	sampleWorkers = 32 // stats API calls at once: each waits for the engine's next one-second collection
)

// live is the in-memory state the one event stream keeps.
type live struct {
	mu      sync.Mutex
	items   map[string]Container // by engine ID
	dirty   map[string]bool      // IDs with events since the last resync
	health  Health
	subs    backend.Subscribers
	prevCPU map[string]usageSample // last counters per running container

	// probeEvery is how often the snapshot is read again without events, and resyncWait
	// how long one read may take: together they bound how long a hung engine goes unnoticed.
	probeEvery, resyncWait time.Duration

	running bool
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

func (l *live) init() {
	l.items = map[string]Container{}
	l.dirty = map[string]bool{}
	l.prevCPU = map[string]usageSample{}
	l.health = Health{Err: "not watching Docker yet", Since: time.Now()}
	l.probeEvery, l.resyncWait = resyncEvery, resyncWait
}

// notifyLocked tells the subscribers that show a container of one of owners (nil: every
// subscriber) that something changed, never blocking.
func (l *live) notifyLocked(owners map[string]bool) { l.subs.Notify(owners) }

func (l *live) setHealth(ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
		if client.IsErrConnectionFailed(err) {
			msg = "cannot connect to the Docker daemon"
		} else if isTimeout(err) {
			msg = "the Docker daemon is not answering"
		}
	}
	if l.health.OK == ok && l.health.Err == msg {
		return
	}
	l.health = Health{OK: ok, Err: msg, Since: time.Now()}
	l.notifyLocked(nil)
}

// fill copies into c what the snapshot knows beyond a list entry (start time, limits, usage).
func (l *live) fill(c *Container) {
	l.mu.Lock()
	defer l.mu.Unlock()
	known, ok := l.items[c.ID]
	if !ok {
		return
	}
	if known.State == c.State {
		c.StartedAt, c.ExitCode = known.StartedAt, known.ExitCode
	}
	c.CPUs, c.MemLimit = known.CPUs, known.MemLimit
	c.CPUPercent, c.MemUsage, c.StatsAt = known.CPUPercent, known.MemUsage, known.StatsAt
}

// Subscribe returns a channel that receives a value (coalesced: buffered 1, never blocking
// the sender) whenever the snapshot or its health changes, and a cancel func that closes it.
func (s *Service) Subscribe() (<-chan struct{}, func()) { return s.subscribe("") }

// SubscribeFor is Subscribe for what Snapshot(id, opts) shows: the channel is told of changes
// to the identity's own containers only (everyone's for a TA asking for all users) and of
// changes of health, so a dashboard wakes only when what it shows changes.
func (s *Service) SubscribeFor(id backend.Identity, opts ListOptions) (<-chan struct{}, func()) {
	if checkIdentity(id) == nil {
		s.noteRole(id) // the idle policy of their containers follows their role
	}
	owner := id.User
	if id.IsTA() && opts.AllUsers {
		owner = ""
	}
	if checkIdentity(id) != nil {
		owner = "\x00" // nobody's: health only
	}
	return s.subscribe(owner)
}

func (s *Service) subscribe(owner string) (<-chan struct{}, func()) {
	return s.live.subs.Add(&s.live.mu, owner)
}

// Snapshot answers from memory, with no API call, what List would: the containers the
// identity may see, sorted by owner and name, and whether the picture is current.
func (s *Service) Snapshot(id backend.Identity, opts ListOptions) ([]Container, Health) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if checkIdentity(id) != nil {
		return nil, s.live.health
	}
	all := id.IsTA() && opts.AllUsers
	out := make([]Container, 0, len(s.live.items))
	for _, c := range s.live.items {
		if !all && c.Owner != id.User {
			continue
		}
		if !opts.All && c.State != "running" {
			continue
		}
		c.Labels = maps.Clone(c.Labels)
		s.notices.markStopped(&c)
		out = append(out, c)
	}
	sortContainers(out)
	return out, s.live.health
}

// Watch starts the one event stream and the stats sampler; they run until ctx ends or
// Close. It returns at once: Health and Subscribe tell when the snapshot is filled.
func (s *Service) Watch(ctx context.Context) error {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.running {
		return errors.New("docker: already watching")
	}
	s.live.running = true
	ctx, s.live.cancel = context.WithCancel(ctx)
	s.live.done.Add(2)
	go func() {
		defer s.live.done.Done()
		s.watch(ctx)
	}()
	go func() {
		defer s.live.done.Done()
		s.sample(ctx)
	}()
	return nil
}

// Close stops watching and releases the engine connection.
func (s *Service) Close() error {
	s.live.mu.Lock()
	cancel := s.live.cancel
	s.live.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.live.done.Wait()
	if s.api != nil {
		return s.api.Close()
	}
	return nil
}

// watch keeps the snapshot current: subscribe to events, resync, fold bursts of events into
// one resync, reconnect with backoff when the stream breaks.
func (s *Service) watch(ctx context.Context) {
	backoff := backoffMin
	for ctx.Err() == nil {
		err := s.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = backoffMin
			continue
		}
		s.live.setHealth(false, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// stream runs one event subscription until it breaks; nil means it was healthy for a while
// (so the next attempt starts without backoff).
func (s *Service) stream(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := s.containerFilters("")
	f.Add("type", "container")
	// Subscribe first, then list: nothing that happens in between is missed.
	ev := s.api.Events(ctx, client.EventsListOptions{Filters: f})
	if err := s.resync(ctx, true); err != nil {
		return err
	}
	s.live.setHealth(true, nil)
	healthySince := time.Now()
	s.checkStarts(ctx, "", nil)
	broken := func(err error) error {
		if time.Since(healthySince) > backoffMax {
			s.live.setHealth(false, err)
			return nil
		}
		return err
	}

	var timer <-chan time.Time
	periodic := time.NewTicker(s.live.probeEvery)
	defer periodic.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-ev.Messages:
			if !ok {
				return broken(errors.New("event stream closed"))
			}
			if m.Action == events.ActionArchivePath || m.Action == events.ActionExtractToDir {
				// File transfers change nothing the snapshot shows; looking would wait for
				// the engine's lock on the container, held while the transfer runs.
				continue
			}
			if m.Action == events.ActionStart && m.Actor.Attributes[LabelGroups] != "" {
				s.checkStarts(ctx, m.Actor.ID, maps.Clone(m.Actor.Attributes))
			}
			s.live.mu.Lock()
			s.live.dirty[m.Actor.ID] = true
			s.live.mu.Unlock()
			if timer == nil {
				timer = time.After(coalesce)
			}
		case err, ok := <-ev.Err:
			if !ok || err == nil {
				err = errors.New("event stream closed")
			}
			return broken(err)
		case <-timer:
			timer = nil
			if err := s.resync(ctx, false); err != nil {
				return broken(err)
			}
		case <-periodic.C:
			if err := s.resync(ctx, false); err != nil {
				return broken(err)
			}
		}
	}
}

// checkStarts checks, off the event loop, that the owner of container id (just started)
// may still have the group workspaces it mounts; with no id, every running container the
// engine may have started by itself (checkStarted, checkRestartable).
func (s *Service) checkStarts(ctx context.Context, id string, labels map[string]string) {
	if len(s.cfg.Groups) == 0 {
		return
	}
	// The check outlives a break of the stream, not the service.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StopTimeout+time.Minute)
	s.live.done.Add(1)
	go func() {
		defer s.live.done.Done()
		defer cancel()
		if id == "" {
			s.checkRestartable(ctx)
			return
		}
		s.checkStarted(ctx, id, labels)
	}()
}

// resync lists the managed containers and inspects those that are new, changed state or
// had events; with full, every container is inspected again.
func (s *Service) resync(ctx context.Context, full bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.live.resyncWait)
	defer cancel()
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: s.containerFilters("")})
	if err != nil {
		return err
	}
	s.live.mu.Lock()
	old, dirty := s.live.items, s.live.dirty
	s.live.dirty = map[string]bool{}
	s.live.mu.Unlock()

	next := make(map[string]Container, len(res.Items))
	for _, sum := range s.withNames(res.Items) {
		c := fromSummary(sum)
		if c.Owner == "" || !s.isUserContainer(sum.Labels, c.Owner) {
			continue
		}
		prev, known := old[c.ID]
		if known && !full && !dirty[c.ID] && prev.State == c.State {
			c.StartedAt, c.ExitCode, c.CPUs, c.MemLimit = prev.StartedAt, prev.ExitCode, prev.CPUs, prev.MemLimit
		} else {
			ins, err := s.api.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
			if cerrdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			if err != nil {
				return err
			}
			s.applyInspect(&c, ins.Container)
		}
		if known && c.State == string(container.StateRunning) {
			c.CPUPercent, c.MemUsage, c.StatsAt = prev.CPUPercent, prev.MemUsage, prev.StatsAt
		}
		next[c.ID] = c
	}

	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	// Usage sampled while this resync ran is kept, for what still runs.
	for id, c := range next {
		if cur, ok := s.live.items[id]; ok && cur.StatsAt.After(c.StatsAt) && c.State == string(container.StateRunning) {
			c.CPUPercent, c.MemUsage, c.StatsAt = cur.CPUPercent, cur.MemUsage, cur.StatsAt
			next[id] = c
		}
	}
	// Whose containers changed: only their subscribers (and those of everyone's) wake.
	owners := map[string]bool{}
	for id, c := range next {
		if cur, ok := s.live.items[id]; !ok || !sameContainer(cur, c) {
			owners[c.Owner] = true
			if ok {
				owners[cur.Owner] = true
			}
		}
	}
	for id, c := range s.live.items {
		if _, ok := next[id]; !ok {
			owners[c.Owner] = true
		}
	}
	s.live.items = next
	if len(owners) > 0 {
		s.live.notifyLocked(owners)
	}
	return nil
}

func sameContainer(a, b Container) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Owner == b.Owner && a.Image == b.Image &&
		a.State == b.State && a.ExitCode == b.ExitCode && a.Status == b.Status &&
		a.Created.Equal(b.Created) && a.StartedAt.Equal(b.StartedAt) && a.CPUs == b.CPUs &&
		a.MemLimit == b.MemLimit && a.CPUPercent == b.CPUPercent && a.MemUsage == b.MemUsage &&
		a.StatsAt.Equal(b.StatsAt) && maps.Equal(a.Labels, b.Labels)
}
