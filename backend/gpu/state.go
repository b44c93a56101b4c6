package gpu

import (
	"slices"
	"time"
)

// Where a GPU process runs, as Process.Where says it.
const (
	WhereContainer      = "container"              // a container this server knows: Owner and ContainerName are set
	WhereOtherContainer = "other container"        // a container, but not one this server knows
	WhereHost           = "host"                   // no container: a process of the host itself
	WhereHidden         = "in use by another user" // what a student sees of a process that is not theirs
)

// State is one sample of every GPU. Fields that NVML could not read are nil (unknown); a
// failed read of one field never hides the others.
type State struct {
	Available bool      `json:"available"`
	Reason    string    `json:"reason,omitempty"` // why not available
	At        time.Time `json:"at,omitzero"`      // when the sample was taken; zero before the first
	GPUs      []GPU     `json:"gpus"`
	// Users is the per-user summary; Snapshot fills it for TAs only.
	Users []UserSummary `json:"users,omitempty"`
}

// GPU is one device in a sample.
type GPU struct {
	Index    int      `json:"index"`
	UUID     string   `json:"uuid,omitempty"`
	Name     string   `json:"name,omitempty"`
	Util     *int     `json:"util_percent"`  // 0..100
	MemUsed  *int64   `json:"mem_used"`      // bytes
	MemTotal *int64   `json:"mem_total"`     // bytes
	TempC    *int     `json:"temperature_c"` // degrees Celsius
	PowerW   *float64 `json:"power_w"`       // watts
	// Processes are the compute processes; ProcessesKnown is false when NVML could not list
	// them (then Processes is empty and means nothing).
	Processes      []Process `json:"processes"`
	ProcessesKnown bool      `json:"processes_known"`
	// History is the last samples of this GPU, oldest first.
	History []Point `json:"history,omitempty"`
}

// Process is one process using a GPU.
type Process struct {
	PID           int    `json:"pid,omitempty"`          // host PID; 0 when hidden
	MemUsed       *int64 `json:"mem_used"`               // bytes of GPU memory; nil when NVML does not say
	Where         string `json:"where"`                  // one of the Where* constants
	ContainerID   string `json:"container_id,omitempty"` // set for WhereContainer and WhereOtherContainer
	Owner         string `json:"owner,omitempty"`        // set for WhereContainer
	ContainerName string `json:"container,omitempty"`    // set for WhereContainer
}

// Point is one entry of a GPU's history; -1 means the value was unknown at that time.
type Point struct {
	At      time.Time `json:"at"`
	Util    int       `json:"util_percent"`
	MemUsed int64     `json:"mem_used"`
}

// UserSummary is what one user holds right now, for TAs.
type UserSummary struct {
	User     string `json:"user"`
	GPUs     []int  `json:"gpus"`     // indexes of the GPUs the user has processes on
	MemUsed  int64  `json:"mem_used"` // bytes of GPU memory over all of them
	MeanUtil *int   `json:"mean_util_percent"`
}

// Free reports whether nothing runs on the GPU (as far as NVML could tell).
func (g GPU) Free() bool { return g.ProcessesKnown && len(g.Processes) == 0 }

// Clone is a deep copy of s, so that a reader may keep or change it.
func (s State) Clone() State {
	out := s
	out.GPUs = make([]GPU, len(s.GPUs))
	for i, g := range s.GPUs {
		g.Processes = slices.Clone(g.Processes)
		g.History = slices.Clone(g.History)
		out.GPUs[i] = g
	}
	out.Users = slices.Clone(s.Users)
	return out
}
