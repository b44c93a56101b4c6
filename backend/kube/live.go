package kube

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"whalemountain/backend"
)

// Health says whether the live snapshot is current. When OK is false, Snapshot keeps
// answering with the last known pods and Err says why.
type Health struct {
	OK    bool      `json:"ok"`
	Err   string    `json:"error,omitempty"`
	Since time.Time `json:"since"`
}

// ListOptions selects what Snapshot and List return.
type ListOptions struct {
	AllUsers bool // every user's pods: TAs only; for students it means their own
}

const (
	probeEvery        = 2 * time.Second  // while unhealthy, how often the cluster is asked again
	healthyProbeEvery = 10 * time.Second // while healthy
	byPodIndex        = "byPod"          // events by the namespace/name of the pod they are about
)

// live is the in-memory state the one informer set keeps.
type live struct {
	mu     sync.Mutex
	pods   map[string]Pod    // by namespace/name
	owners map[string]string // managed namespace -> owner
	health Health
	subs   backend.Subscribers

	// refreshMu makes reading the caches and storing the view one step, so a view built
	// from older caches never overwrites one built from newer.
	refreshMu sync.Mutex

	running bool
	cancel  context.CancelFunc
	done    sync.WaitGroup

	nsInf, podInf, evInf cache.SharedIndexInformer
}

func (l *live) init() {
	l.pods = map[string]Pod{}
	l.owners = map[string]string{}
	l.health = Health{Err: "not watching Kubernetes yet", Since: time.Now()}
}

// notifyLocked tells the subscribers that show a pod of one of owners (nil: every
// subscriber) that something changed, never blocking.
func (l *live) notifyLocked(owners map[string]bool) { l.subs.Notify(owners) }

func (l *live) setHealth(ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := ""
	if err != nil {
		msg = oneLine(err.Error(), maxReason)
	}
	if l.health.OK == ok && l.health.Err == msg {
		return
	}
	l.health = Health{OK: ok, Err: msg, Since: time.Now()}
	l.notifyLocked(nil)
}

// Health reports whether the snapshot is current.
func (s *Service) Health() Health {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	return s.live.health
}

// SubscribeFor returns a channel that receives a value (coalesced: buffered 1, never
// blocking the sender) whenever what Snapshot(id, opts) shows changes — the identity's own
// pods, everyone's for a TA asking for all users — or the health does; and a cancel func
// that closes it.
func (s *Service) SubscribeFor(id backend.Identity, opts ListOptions) (<-chan struct{}, func()) {
	owner := id.User
	if id.IsTA() && opts.AllUsers {
		owner = ""
	}
	if checkIdentity(id) != nil {
		owner = "\x00" // nobody's: health only
	}
	return s.live.subs.Add(&s.live.mu, owner)
}

// Snapshot answers from memory, with no API call, the pods the identity may see, sorted by
// owner and name, and whether the picture is current.
func (s *Service) Snapshot(id backend.Identity, opts ListOptions) ([]Pod, Health) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if checkIdentity(id) != nil {
		return nil, s.live.health
	}
	all := id.IsTA() && opts.AllUsers
	out := make([]Pod, 0, len(s.live.pods))
	for _, p := range s.live.pods {
		if !all && p.Owner != id.User {
			continue
		}
		p.Labels = maps.Clone(p.Labels)
		out = append(out, p)
	}
	sortPods(out)
	return out, s.live.health
}

// Watch starts the one informer set (managed namespaces, pods, warning events about pods);
// it runs until ctx ends or Close. It returns at once: Health and SubscribeFor tell when the
// snapshot is filled.
func (s *Service) Watch(ctx context.Context) error {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.running {
		return errors.New("kube: already watching")
	}
	s.live.running = true
	ctx, s.live.cancel = context.WithCancel(ctx)

	sel := labels.SelectorFromSet(s.cfg.selectors()).String()
	nsF := informers.NewSharedInformerFactoryWithOptions(s.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }),
		informers.WithTransform(stripManagedFields))
	podF := informers.NewSharedInformerFactoryWithOptions(s.cs, 0, informers.WithTransform(stripManagedFields))
	evF := informers.NewSharedInformerFactoryWithOptions(s.cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "involvedObject.kind=Pod,type=" + corev1.EventTypeWarning
		}),
		informers.WithTransform(stripManagedFields))
	l := &s.live
	l.nsInf = nsF.Core().V1().Namespaces().Informer()
	l.podInf = podF.Core().V1().Pods().Informer()
	l.evInf = evF.Core().V1().Events().Informer()
	if err := l.evInf.AddIndexers(cache.Indexers{byPodIndex: func(obj any) ([]string, error) {
		e, ok := obj.(*corev1.Event)
		if !ok {
			return nil, nil
		}
		return []string{e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name}, nil
	}}); err != nil {
		return err
	}
	for _, inf := range []cache.SharedIndexInformer{l.nsInf, l.podInf, l.evInf} {
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			if ctx.Err() == nil {
				l.setHealth(false, apiErr("watch Kubernetes", err))
			}
		})
	}
	handler := func(key func(obj any) []string) cache.ResourceEventHandlerFuncs {
		on := func(obj any) {
			for _, k := range key(obj) {
				s.refresh(k)
			}
		}
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    on,
			UpdateFunc: func(_, obj any) { on(obj) },
			DeleteFunc: on,
		}
	}
	if _, err := l.nsInf.AddEventHandler(handler(s.namespaceChanged)); err != nil {
		return err
	}
	if _, err := l.podInf.AddEventHandler(handler(func(obj any) []string { return []string{keyOf(obj)} })); err != nil {
		return err
	}
	if _, err := l.evInf.AddEventHandler(handler(func(obj any) []string {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if e, ok := obj.(*corev1.Event); ok {
			return []string{e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name}
		}
		return nil
	})); err != nil {
		return err
	}

	nsF.Start(ctx.Done())
	podF.Start(ctx.Done())
	evF.Start(ctx.Done())
	synced := make(chan struct{})
	l.done.Add(2)
	go func() {
		defer l.done.Done()
		if cache.WaitForCacheSync(ctx.Done(), l.nsInf.HasSynced, l.podInf.HasSynced, l.evInf.HasSynced) {
			close(synced)
		}
	}()
	go func() {
		defer l.done.Done()
		defer nsF.Shutdown()
		defer podF.Shutdown()
		defer evF.Shutdown()
		s.probe(ctx, synced)
	}()
	if len(s.cfg.Datasets) > 0 || len(s.cfg.Groups) > 0 {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			s.repairSharedEvery(ctx)
		}()
	}
	return nil
}

// repairSharedEvery runs RepairShared every Config.SharedRepairEvery until ctx ends.
func (s *Service) repairSharedEvery(ctx context.Context) {
	every := s.cfg.SharedRepairEvery
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.RepairShared(ctx) // logged there
		}
	}
}

// probe keeps Health true to the cluster: every probeEvery while the snapshot is not
// current (healthyProbeEvery while it is), it asks for one object of each kind the informers
// watch — from the API server's cache, so it costs next to nothing — and calls the snapshot
// current once those answer and the informers have synced. The informers retry on their own
// (silently, when the cluster is unreachable: hence the probe).
func (s *Service) probe(ctx context.Context, synced <-chan struct{}) {
	l := &s.live
	for {
		isSynced := l.nsInf.HasSynced() && l.podInf.HasSynced() && l.evInf.HasSynced()
		err := s.ping(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			l.setHealth(false, err)
		case isSynced:
			l.setHealth(true, nil)
		}
		wait := probeEvery
		if s.Health().OK {
			wait = healthyProbeEvery
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-synced: // the first fill: say so at once
			synced = nil
			t.Stop()
		}
	}
}

// ping lists one object of each kind the informers watch, from the API server's cache.
func (s *Service) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeEvery)
	defer cancel()
	o := metav1.ListOptions{Limit: 1, ResourceVersion: "0"}
	nsO := o
	nsO.LabelSelector = labelSelector(s.cfg.selectors())
	if _, err := s.cs.CoreV1().Namespaces().List(ctx, nsO); err != nil {
		return apiErr("watch Kubernetes", err)
	}
	if _, err := s.cs.CoreV1().Pods("").List(ctx, o); err != nil {
		return apiErr("watch Kubernetes", err)
	}
	if _, err := s.cs.CoreV1().Events("").List(ctx, o); err != nil {
		return apiErr("watch Kubernetes", err)
	}
	return nil
}

// Close stops watching.
func (s *Service) Close() error {
	s.live.mu.Lock()
	cancel := s.live.cancel
	s.live.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.live.done.Wait()
	return nil
}

func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

func keyOf(obj any) string {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Key
	}
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
}

// namespaceChanged notes a managed namespace's owner and returns the keys of its pods.
func (s *Service) namespaceChanged(obj any) []string {
	name := ""
	owner := ""
	switch o := obj.(type) {
	case *corev1.Namespace:
		name = o.Name
		if cur, ok, _ := s.live.nsInf.GetStore().GetByKey(o.Name); ok {
			owner = s.namespaceOwner(cur.(*corev1.Namespace))
		}
	case cache.DeletedFinalStateUnknown:
		name = o.Key
	}
	if name == "" {
		return nil
	}
	s.live.mu.Lock()
	if owner == "" {
		delete(s.live.owners, name)
	} else {
		s.live.owners[name] = owner
	}
	s.live.mu.Unlock()
	keys, _ := s.live.podInf.GetIndexer().IndexKeys(cache.NamespaceIndex, name)
	// Pods the snapshot shows for the namespace but the cache no longer has go too.
	s.live.mu.Lock()
	for k, p := range s.live.pods {
		if p.Namespace == name {
			keys = append(keys, k)
		}
	}
	s.live.mu.Unlock()
	return keys
}

// refresh rebuilds the snapshot's view of one pod (namespace/name) from the caches and
// wakes the subscribers of its owner if it changed.
func (s *Service) refresh(key string) {
	l := &s.live
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	ns, _, _ := cache.SplitMetaNamespaceKey(key)
	var view *Pod
	l.mu.Lock()
	owner := l.owners[ns]
	l.mu.Unlock()
	if owner != "" {
		if obj, ok, _ := l.podInf.GetStore().GetByKey(key); ok {
			var events []*corev1.Event
			objs, _ := l.evInf.GetIndexer().ByIndex(byPodIndex, key)
			for _, o := range objs {
				if e, ok := o.(*corev1.Event); ok {
					events = append(events, e)
				}
			}
			v := podView(obj.(*corev1.Pod), owner, s.cfg.GPUResource, events)
			view = &v
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old, had := l.pods[key]
	switch {
	case view == nil && !had:
		return
	case view == nil:
		delete(l.pods, key)
		l.notifyLocked(map[string]bool{old.Owner: true})
	case had && reflect.DeepEqual(old, *view):
		return
	default:
		l.pods[key] = *view
		l.notifyLocked(map[string]bool{old.Owner: true, view.Owner: true})
	}
}
