package kube

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Pod is one pod in a managed namespace as users see it.
type Pod struct {
	Name      string `json:"name"`      // the pod's name in its namespace
	Owner     string `json:"owner"`     // the user whose namespace it is in
	Namespace string `json:"namespace"` // for kubectl
	Image     string `json:"image"`     // of its first container
	// Phase is Kubernetes' phase: Pending, Running, Succeeded, Failed or Unknown.
	Phase string `json:"phase"`
	// Status is what `kubectl get pods` shows: Running, Pending, ContainerCreating,
	// ImagePullBackOff, ErrImagePull, CrashLoopBackOff, OOMKilled, Completed, Error,
	// Terminating, ...
	Status string `json:"status"`
	// Reason says in one line why a pod is not simply running or done: the scheduler's
	// "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", the image pull error, "last
	// exit code 1 (Error), restarted 4 times", "out of memory (limit 2.0 GiB)".
	Reason   string `json:"reason,omitempty"`
	Ready    bool   `json:"ready"`
	Restarts int32  `json:"restarts"`
	// ExitCode is the exit code of the last run of its container that ended; nil if none.
	ExitCode *int   `json:"exit_code,omitempty"`
	Node     string `json:"node,omitempty"`

	CPUs   float64 `json:"cpus,omitempty"`   // CPU limit of its containers
	Memory int64   `json:"memory,omitempty"` // memory limit, bytes
	GPUs   int64   `json:"gpus,omitempty"`   // GPUs asked for

	Created   time.Time `json:"created"`
	StartedAt time.Time `json:"started_at,omitzero"`

	// Managed is set for pods made through this server; pods made with kubectl have it unset.
	Managed bool              `json:"managed"`
	Labels  map[string]string `json:"labels,omitempty"`

	// UID is the cluster's ID, for other backend code; users never type it.
	UID string `json:"-"`
}

// Ref is how a TA names the pod: "owner/name".
func (p Pod) Ref() string { return p.Owner + "/" + p.Name }

// Running reports whether the pod and its container run (exec and port-forward reach it).
func (p Pod) Running() bool { return p.Phase == string(corev1.PodRunning) && p.Status == "Running" }

// podView is what users see of a pod in owner's namespace, with the warning events about it
// (any order; those about an earlier pod of the same name are ignored).
func podView(pod *corev1.Pod, owner, gpuResource string, events []*corev1.Event) Pod {
	p := Pod{
		Name:      pod.Name,
		Owner:     owner,
		Namespace: pod.Namespace,
		Phase:     string(pod.Status.Phase),
		Node:      pod.Spec.NodeName,
		Created:   pod.CreationTimestamp.UTC(),
		Managed:   pod.Labels[LabelManaged] == "true",
		Labels:    maps.Clone(pod.Labels),
		UID:       string(pod.UID),
	}
	if p.Phase == "" {
		p.Phase = string(corev1.PodPending)
	}
	if len(pod.Spec.Containers) > 0 {
		p.Image = pod.Spec.Containers[0].Image
	}
	if pod.Status.StartTime != nil {
		p.StartedAt = pod.Status.StartTime.UTC()
	}
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			p.CPUs += float64(q.MilliValue()) / 1000
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			p.Memory += q.Value()
		}
		if q, ok := c.Resources.Limits[corev1.ResourceName(gpuResource)]; ok {
			p.GPUs += q.Value()
		}
	}
	events = slices.DeleteFunc(slices.Clone(events), func(e *corev1.Event) bool {
		return e.InvolvedObject.UID != "" && e.InvolvedObject.UID != pod.UID
	})
	p.Status, p.Reason = podStatus(pod, events)
	p.Ready = podReady(pod)
	for _, cs := range pod.Status.ContainerStatuses {
		p.Restarts += cs.RestartCount
	}
	p.ExitCode = lastExitCode(pod)
	return p
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// lastExitCode is the exit code of the first container's current run if it ended, else of
// its previous run.
func lastExitCode(pod *corev1.Pod) *int {
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			n := int(t.ExitCode)
			return &n
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			n := int(t.ExitCode)
			return &n
		}
	}
	return nil
}

// maxReason is how long a Reason line may get.
const maxReason = 240

// podStatus is kubectl's STATUS word for a pod and the one line that explains it.
func podStatus(pod *corev1.Pod, events []*corev1.Event) (status, reason string) {
	status = cmp.Or(string(pod.Status.Phase), string(corev1.PodPending))
	if pod.Status.Reason != "" {
		status = pod.Status.Reason // Evicted, NodeLost, ...
		reason = oneLine(pod.Status.Message, maxReason)
	}
	limit := memoryLimit(pod)

	// The first container that is not plainly running decides, as in kubectl.
	for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
		cs := pod.Status.ContainerStatuses[i]
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			w := cs.State.Waiting
			status = w.Reason
			switch w.Reason {
			case "CrashLoopBackOff":
				reason = crashWords(cs, limit)
			case "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
				reason = cmp.Or(latestMessage(events, "Failed"), oneLine(w.Message, maxReason))
			default:
				reason = oneLine(w.Message, maxReason)
			}
		case cs.State.Terminated != nil:
			t := cs.State.Terminated
			switch {
			case t.Reason != "":
				status = t.Reason
			case t.Signal != 0:
				status = fmt.Sprintf("Signal:%d", t.Signal)
			default:
				status = fmt.Sprintf("ExitCode:%d", t.ExitCode)
			}
			switch {
			case t.Reason == "OOMKilled":
				reason = oomWords(limit)
			case t.ExitCode != 0:
				reason = fmt.Sprintf("exited with code %d", t.ExitCode)
				if m := oneLine(t.Message, maxReason); m != "" {
					reason += ": " + m
				}
			}
		case cs.State.Running != nil && cs.LastTerminationState.Terminated != nil &&
			cs.LastTerminationState.Terminated.Reason == "OOMKilled":
			if reason == "" {
				reason = "restarted after running out of memory (limit " + formatBytes(limit) + ")"
			}
		}
	}
	if pod.Status.Phase == corev1.PodPending && status == string(corev1.PodPending) {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				reason = cmp.Or(latestMessage(events, "FailedScheduling"), oneLine(c.Message, maxReason),
					"waiting to be scheduled")
			}
		}
		if reason == "" {
			reason = latestMessage(events, "")
		}
	}
	if pod.DeletionTimestamp != nil {
		status, reason = "Terminating", ""
	}
	return status, reason
}

// crashWords explains a CrashLoopBackOff by the run that ended last.
func crashWords(cs corev1.ContainerStatus, limit int64) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		return fmt.Sprintf("keeps crashing; restarted %d times", cs.RestartCount)
	}
	if t.Reason == "OOMKilled" {
		return oomWords(limit) + fmt.Sprintf("; restarted %d times", cs.RestartCount)
	}
	s := fmt.Sprintf("last exit code %d", t.ExitCode)
	if t.Reason != "" {
		s += " (" + oneLine(t.Reason, 40) + ")"
	}
	return s + fmt.Sprintf(", restarted %d times", cs.RestartCount)
}

func oomWords(limit int64) string {
	if limit > 0 {
		return "killed: out of memory (limit " + formatBytes(limit) + ")"
	}
	return "killed: out of memory"
}

func memoryLimit(pod *corev1.Pod) int64 {
	var n int64
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			n += q.Value()
		}
	}
	return n
}

// latestMessage is the message of the newest event with that reason ("" for any).
func latestMessage(events []*corev1.Event, reason string) string {
	var best *corev1.Event
	for _, e := range events {
		if reason != "" && e.Reason != reason {
			continue
		}
		if best == nil || eventTime(e).After(eventTime(best)) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return oneLine(strings.TrimSpace(best.Message), maxReason)
}

// Event is a warning about a pod, in the words users read.
type Event struct {
	Reason  string    `json:"reason"`  // FailedScheduling, BackOff, Failed, ...
	Message string    `json:"message"` // one line
	Count   int32     `json:"count"`   // how often it happened
	Last    time.Time `json:"last"`
}

// maxEvents is how many events Details keeps: the newest.
const maxEvents = 5

// eventsOf are the warnings about pod (not an earlier pod of the same name), newest first.
func eventsOf(pod *corev1.Pod, events []*corev1.Event) []Event {
	var out []Event
	for _, e := range events {
		if e.InvolvedObject.UID != "" && e.InvolvedObject.UID != pod.UID {
			continue
		}
		n := e.Count
		if e.Series != nil && e.Series.Count > n {
			n = e.Series.Count
		}
		out = append(out, Event{Reason: oneLine(e.Reason, 64), Message: oneLine(strings.TrimSpace(e.Message), maxReason), Count: max(n, 1), Last: eventTime(e).UTC()})
	}
	slices.SortStableFunc(out, func(a, b Event) int { return b.Last.Compare(a.Last) })
	if len(out) > maxEvents {
		out = out[:maxEvents]
	}
	return out
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// sortPods orders by owner, then name.
func sortPods(ps []Pod) {
	slices.SortFunc(ps, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.Name, b.Name))
	})
}
