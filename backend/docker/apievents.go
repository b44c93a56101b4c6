package docker

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"whalemountain/backend"
)

// Events for the Docker API (GET /events), derived from the live snapshot: each client
// follows the snapshot of its own containers (SubscribeFor), so any number of them costs
// the engine nothing beyond the one event stream the snapshot already has. What the
// snapshot tells apart becomes the engine's container events: create, start, die, pause,
// unpause, restart, destroy. Only the caller's own containers, named as they name them.

// APIEventFilters are the Docker API's event filters the door understands: type,
// container (name or ID prefix), event, label (key or key=value) and image.
type APIEventFilters map[string][]string

// apiEvent is one event in the engine's JSON form (with the older fields too).
type apiEvent struct {
	Status   string   `json:"status,omitempty"`
	ID       string   `json:"id,omitempty"`
	From     string   `json:"from,omitempty"`
	Type     string   `json:"Type"`
	Action   string   `json:"Action"`
	Actor    apiActor `json:"Actor"`
	Scope    string   `json:"scope"`
	Time     int64    `json:"time"`
	TimeNano int64    `json:"timeNano"`
}

type apiActor struct {
	ID         string
	Attributes map[string]string
}

// Events streams the events of the identity's own containers as JSON, one value per
// event, until ctx ends, until (when not zero) passes, or the channel's reader stops: close
// the returned stop func when done. Filters the door does not know are an error.
func (a *API) Events(ctx context.Context, id backend.Identity, filters APIEventFilters, until time.Time) (<-chan []byte, func(), error) {
	if err := checkIdentity(id); err != nil {
		return nil, nil, err
	}
	for k := range filters {
		switch k {
		case "type", "container", "event", "label", "image", "scope":
		default:
			return nil, nil, errorf(ErrInvalid, "invalid filter '%s'", shown(k))
		}
	}
	opts := ListOptions{All: true}
	wake, cancel := a.svc.SubscribeFor(id, opts)
	ctx, stop := context.WithCancel(ctx)
	out := make(chan []byte, 64)
	prev := snapshotByID(a.svc, id, opts)
	go func() {
		defer close(out)
		defer cancel()
		var deadline <-chan time.Time
		if !until.IsZero() {
			t := time.NewTimer(time.Until(until))
			defer t.Stop()
			deadline = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-deadline:
				return
			case _, ok := <-wake:
				if !ok {
					return
				}
			}
			cur := snapshotByID(a.svc, id, opts)
			for _, ev := range diffEvents(prev, cur, time.Now()) {
				if !filters.match(ev) {
					continue
				}
				js, _ := json.Marshal(ev)
				select {
				case out <- js:
				case <-ctx.Done():
					return
				}
			}
			prev = cur
		}
	}()
	return out, stop, nil
}

func snapshotByID(s *Service, id backend.Identity, opts ListOptions) map[string]Container {
	cs, _ := s.Snapshot(id, opts)
	m := make(map[string]Container, len(cs))
	for _, c := range cs {
		if c.Owner == id.User {
			m[c.ID] = c
		}
	}
	return m
}

// diffEvents are the events that lead from prev to cur, in a stable order.
func diffEvents(prev, cur map[string]Container, now time.Time) []apiEvent {
	var out []apiEvent
	ev := func(c Container, action string, extra map[string]string) {
		attrs := map[string]string{}
		for k, v := range c.Labels {
			attrs[k] = v
		}
		attrs["name"], attrs["image"] = c.Name, c.Image
		maps.Copy(attrs, extra)
		out = append(out, apiEvent{Status: action, ID: c.ID, From: c.Image, Type: "container", Action: action,
			Actor: apiActor{ID: c.ID, Attributes: attrs}, Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()})
	}
	exit := func(c Container) map[string]string { return map[string]string{"exitCode": strconv.Itoa(c.ExitCode)} }
	running := func(c Container) bool { return c.State == "running" || c.State == "paused" || c.State == "restarting" }
	ids := slices.Sorted(maps.Keys(cur))
	for _, k := range ids {
		c := cur[k]
		p, seen := prev[k]
		switch {
		case !seen:
			ev(c, "create", nil)
			if running(c) || !c.StartedAt.IsZero() {
				ev(c, "start", nil)
			}
			if !running(c) && !c.StartedAt.IsZero() {
				ev(c, "die", exit(c))
			}
		case !running(p) && running(c):
			ev(c, "start", nil)
		case running(p) && !running(c):
			ev(c, "die", exit(c))
			if c.Stopped != nil {
				ev(c, "stop", nil)
			}
		case p.State == "running" && c.State == "paused":
			ev(c, "pause", nil)
		case p.State == "paused" && c.State == "running":
			ev(c, "unpause", nil)
		case running(c) && !p.StartedAt.IsZero() && !c.StartedAt.Equal(p.StartedAt):
			ev(c, "restart", nil)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(prev)) {
		if _, ok := cur[k]; !ok {
			ev(prev[k], "destroy", nil)
		}
	}
	return out
}

// match reports whether an event passes the filters: each key's values are alternatives,
// all keys must match.
func (f APIEventFilters) match(ev apiEvent) bool {
	for k, vs := range f {
		if len(vs) == 0 {
			continue
		}
		ok := slices.ContainsFunc(vs, func(v string) bool {
			switch k {
			case "type":
				return v == ev.Type
			case "scope":
				return v == ev.Scope
			case "event":
				return v == ev.Action
			case "image":
				return v == ev.From
			case "container":
				v = strings.TrimPrefix(v, "/")
				return v == ev.Actor.Attributes["name"] || hexRE.MatchString(v) && strings.HasPrefix(ev.Actor.ID, v)
			case "label":
				key, val, hasVal := strings.Cut(v, "=")
				got, present := ev.Actor.Attributes[key]
				return present && (!hasVal || got == val)
			}
			return false
		})
		if !ok {
			return false
		}
	}
	return true
}

// ParseEventTime reads the Docker API's since/until: Unix seconds, with a fraction or not;
// empty is the zero time.
func ParseEventTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	var nanos int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		nanos = f
	}
	return time.Unix(n, nanos), true
}
