package kube

import (
	"context"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"whalemountain/backend"
)

// LogOptions selects which logs Logs returns.
type LogOptions struct {
	Follow     bool // keep streaming until the context ends or the reader is closed
	Tail       int  // last N lines; 0 or less: all
	Previous   bool // of the container's previous run (after a restart)
	Timestamps bool // prefix every line with its RFC 3339 time
}

// Logs streams the logs of the first container of a pod the identity may see. Close the
// reader when done; with Follow it ends when the pod's container does, or ctx ends.
func (s *Service) Logs(ctx context.Context, id backend.Identity, ref string, opts LogOptions) (io.ReadCloser, error) {
	f, err := s.find(ctx, id, ref)
	if err != nil {
		return nil, err
	}
	if len(f.pod.Spec.Containers) == 0 {
		return nil, notFound(ref)
	}
	if f.pod.Status.Phase == corev1.PodPending && !opts.Previous && !started(f.pod) {
		return nil, errorf(ErrConflict, "pod %s has no logs yet: it has not started (%s)", shown(ref), podView(f.pod, f.owner, s.cfg.GPUResource, nil).Status)
	}
	lo := &corev1.PodLogOptions{
		Container:  f.pod.Spec.Containers[0].Name,
		Follow:     opts.Follow,
		Previous:   opts.Previous,
		Timestamps: opts.Timestamps,
	}
	if opts.Tail > 0 {
		n := int64(opts.Tail)
		lo.TailLines = &n
	}
	rc, err := s.cs.CoreV1().Pods(f.ns).GetLogs(f.pod.Name, lo).Stream(ctx)
	if err != nil {
		if opts.Previous && apierrors.IsBadRequest(err) {
			return nil, errorf(ErrConflict, "pod %s has no previous run", shown(ref))
		}
		return nil, apiErr("logs of pod "+shown(ref), err)
	}
	return rc, nil
}

// started reports whether any container of the pod has started at least once.
func started(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}
