package gpu

import (
	"sort"

	"whalemountain/backend"
)

// view is what id may see of s, as a copy; s is not changed.
func view(s State, id backend.Identity) State {
	out := s.Clone()
	restrict(&out, id)
	return out
}

// restrict cuts s, a copy the caller owns, down to what id may see. A student sees every GPU
// and their own processes in full; any other process is only "in use by another user" with
// its GPU memory: no owner, no container, no PID. A TA sees everything, plus a summary per
// user. The zero Identity (or any invalid one) sees the GPUs and no one's processes.
func restrict(s *State, id backend.Identity) {
	if id.Valid() && id.IsTA() {
		s.Users = summarise(s.GPUs)
		return
	}
	s.Users = nil
	for i := range s.GPUs {
		procs := s.GPUs[i].Processes
		for j, p := range procs {
			if id.Valid() && p.Where == WhereContainer && p.Owner == id.User {
				continue
			}
			procs[j] = Process{MemUsed: p.MemUsed, Where: WhereHidden}
		}
	}
}

// summarise adds up, per owner of a known container, the GPUs held, their memory and the mean
// of those GPUs' utilisation. Users are sorted by name.
func summarise(gpus []GPU) []UserSummary {
	byUser := map[string]*UserSummary{}
	for _, g := range gpus {
		for _, p := range g.Processes {
			if p.Where != WhereContainer || p.Owner == "" {
				continue
			}
			u := byUser[p.Owner]
			if u == nil {
				u = &UserSummary{User: p.Owner}
				byUser[p.Owner] = u
			}
			if len(u.GPUs) == 0 || u.GPUs[len(u.GPUs)-1] != g.Index {
				u.GPUs = append(u.GPUs, g.Index)
			}
			if p.MemUsed != nil {
				u.MemUsed += *p.MemUsed
			}
		}
	}
	util := map[int]*int{}
	for _, g := range gpus {
		util[g.Index] = g.Util
	}
	out := make([]UserSummary, 0, len(byUser))
	for _, u := range byUser {
		sum, n := 0, 0
		for _, idx := range u.GPUs {
			if v := util[idx]; v != nil {
				sum += *v
				n++
			}
		}
		if n > 0 {
			m := (sum + n/2) / n
			u.MeanUtil = &m
		}
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}
