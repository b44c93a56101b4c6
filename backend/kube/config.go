package kube

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"whalemountain/backend"
)

// Label and annotation keys the server writes; it reads only what it wrote.
const (
	// LabelManaged marks every object the server made ("true").
	LabelManaged = "whalemountain.io/managed"
	// LabelOwner carries the owner key of a namespace (OwnerKey of the user name): the one
	// thing that decides whose a namespace is. On pods it is informative only.
	LabelOwner = "whalemountain.io/owner"
	// LabelName is the user's name for a pod the server made.
	LabelName = "whalemountain.io/name"
	// AnnotationOwner is the owner's user name, as typed, on a namespace the server made.
	AnnotationOwner = "whalemountain.io/owner"
)

// Pod security levels a site may choose.
const (
	PodSecurityBaseline   = "baseline"
	PodSecurityRestricted = "restricted"
)

// Quota bounds what one user of a role may have in their namespace at once.
type Quota struct {
	CPUs   float64 // CPU cores, requests and limits alike
	Memory int64   // bytes, requests and limits alike
	Pods   int     // pods in any state
	GPUs   int     // GPUs (GPUResource); 0: none
}

// Toleration lets GPU pods onto tainted GPU nodes (corev1.Toleration's fields).
type Toleration struct {
	Key      string
	Operator string // "Equal" or "Exists"; empty: Equal
	Value    string
	Effect   string // "NoSchedule", "PreferNoSchedule", "NoExecute" or empty for all
}

// Config is the pod policy. Start from DefaultConfig, change what the site needs, then
// Validate. None of it can be overridden per pod.
type Config struct {
	// Kubeconfig is the path of the kubeconfig the server uses; empty: in-cluster.
	Kubeconfig string
	// Context in Kubeconfig; empty: its current context.
	Context string
	// WrapTransport, when set, wraps the transport of every call to the API server (the
	// benchmarks count the calls with it). It is never read from the config file.
	WrapTransport func(http.RoundTripper) http.RoundTripper

	// PublicServer is the API server URL written into users' kubeconfigs; empty: the one
	// the server itself uses. PublicCAFile is the CA bundle written with it; empty: the
	// server's own.
	PublicServer string
	PublicCAFile string
	// ClusterName names the cluster and context in users' kubeconfigs.
	ClusterName string

	// NamespacePrefix starts every namespace name: "<prefix><user>-<hash>".
	NamespacePrefix string
	// Labels are extra labels put on every object. They also select: this server sees only
	// namespaces that carry all of them (besides LabelManaged).
	Labels map[string]string

	// Student and TA are the per-role quotas of a namespace.
	Student Quota
	TA      Quota
	// DefaultCPUs and DefaultMemory are a pod's limits when it asks for none (Run, and the
	// LimitRange defaults for pods made with kubectl).
	DefaultCPUs   float64
	DefaultMemory int64

	// GPUResource is the extended resource GPUs are asked for as.
	GPUResource string
	// GPUNodeSelector, GPUTolerations and GPURuntimeClass apply to pods with GPUs.
	GPUNodeSelector map[string]string
	GPUTolerations  []Toleration
	GPURuntimeClass string

	// PodSecurity is the Pod Security Standard enforced in every namespace: "baseline" or
	// "restricted". With restricted, pods run as RunAsUser, never as root.
	PodSecurity string
	RunAsUser   int64
	// Capabilities is the allow-list: every container drops ALL and adds back these. With
	// restricted only NET_BIND_SERVICE is allowed; with baseline the baseline's list.
	Capabilities []string

	// HomeStorageClass, when set, gives every user a PersistentVolumeClaim "home" of
	// HomeSize in that class, mounted into every pod the server makes; empty: an emptyDir
	// (the home lasts as long as the pod).
	HomeStorageClass string
	HomeSize         int64
	// HomeTarget is where the home is mounted, a template containing {user}.
	HomeTarget string

	// TokenLifetime is how long a kubeconfig's token is valid (10m to 48h).
	TokenLifetime time.Duration

	// Datasets and Groups are the shared data mounted into pods (shared.go).
	Datasets []Dataset
	Groups   []GroupWorkspace
	// SharedRepairEvery is how often the live watch removes the claims of shared data
	// their owners are no longer entitled to (RepairShared); 0: every 5 minutes.
	SharedRepairEvery time.Duration
}

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// DefaultCapabilities lets root in a pod install packages; it is within the baseline policy.
var DefaultCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE",
}

// baselineCapabilities are those the baseline Pod Security Standard allows to add.
var baselineCapabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// DefaultConfig returns the safe defaults.
func DefaultConfig() Config {
	return Config{
		ClusterName:     "whalemountain",
		NamespacePrefix: "wm-",
		Student:         Quota{CPUs: 4, Memory: 8 * gib, Pods: 5, GPUs: 1},
		TA:              Quota{CPUs: 16, Memory: 32 * gib, Pods: 20, GPUs: 4},
		DefaultCPUs:     1,
		DefaultMemory:   2 * gib,
		GPUResource:     "nvidia.com/gpu",
		PodSecurity:     PodSecurityBaseline,
		RunAsUser:       1000,
		Capabilities:    slices.Clone(DefaultCapabilities),
		HomeSize:        10 * gib,
		HomeTarget:      "/home/{user}",
		TokenLifetime:   8 * time.Hour,
	}
}

var prefixRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9-])?$`)

// Validate reports the first invalid field, by name.
func (c Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("kube config: %s %s", field, fmt.Sprintf(format, a...))
	}
	if !prefixRE.MatchString(c.NamespacePrefix) {
		return bad("NamespacePrefix", "must be 1-16 lower-case letters, digits or '-', starting with a letter or digit (got %q)", c.NamespacePrefix)
	}
	if c.PublicServer != "" && !strings.HasPrefix(c.PublicServer, "https://") {
		return bad("PublicServer", "must be an https:// URL (got %q)", c.PublicServer)
	}
	if len(validation.IsDNS1123Label(c.ClusterName)) > 0 {
		return bad("ClusterName", "must be a DNS label (got %q)", c.ClusterName)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return bad("Labels", "has an invalid key %q: %s", k, errs[0])
		}
		if strings.HasPrefix(k, "whalemountain.io/") || strings.HasPrefix(k, "pod-security.kubernetes.io/") {
			return bad("Labels", "may not set %s: the server's own keys are its to write", k)
		}
		if errs := validation.IsValidLabelValue(c.Labels[k]); len(errs) > 0 {
			return bad("Labels", "has an invalid value for %q: %s", k, errs[0])
		}
	}
	if errs := validation.IsQualifiedName(c.GPUResource); len(errs) > 0 || !strings.Contains(c.GPUResource, "/") {
		return bad("GPUResource", "must be an extended resource name such as nvidia.com/gpu (got %q)", c.GPUResource)
	}
	for _, q := range []struct {
		field string
		q     Quota
	}{{"Student", c.Student}, {"TA", c.TA}} {
		switch {
		case !(q.q.CPUs > 0) || math.IsInf(q.q.CPUs, 0):
			return bad(q.field+".CPUs", "must be positive (got %g)", q.q.CPUs)
		case q.q.Memory < minMemory:
			return bad(q.field+".Memory", "must be at least %s (got %d)", formatBytes(minMemory), q.q.Memory)
		case q.q.Pods < 1:
			return bad(q.field+".Pods", "must be at least 1 (got %d)", q.q.Pods)
		case q.q.GPUs < 0:
			return bad(q.field+".GPUs", "must not be negative (got %d)", q.q.GPUs)
		case c.DefaultCPUs > q.q.CPUs:
			return bad("DefaultCPUs", "must fit %s.CPUs (%g > %g)", q.field, c.DefaultCPUs, q.q.CPUs)
		case c.DefaultMemory > q.q.Memory:
			return bad("DefaultMemory", "must fit %s.Memory (%s > %s)", q.field, formatBytes(c.DefaultMemory), formatBytes(q.q.Memory))
		}
	}
	if !(c.DefaultCPUs >= 0.001) || math.IsInf(c.DefaultCPUs, 0) {
		return bad("DefaultCPUs", "must be at least 0.001 (got %g)", c.DefaultCPUs)
	}
	if c.DefaultMemory < minMemory {
		return bad("DefaultMemory", "must be at least %s (got %d)", formatBytes(minMemory), c.DefaultMemory)
	}
	for _, k := range slices.Sorted(maps.Keys(c.GPUNodeSelector)) {
		if len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(c.GPUNodeSelector[k])) > 0 {
			return bad("GPUNodeSelector", "has an invalid entry %q=%q", k, c.GPUNodeSelector[k])
		}
	}
	for _, t := range c.GPUTolerations {
		switch {
		case t.Key != "" && len(validation.IsQualifiedName(t.Key)) > 0:
			return bad("GPUTolerations", "has an invalid key %q", t.Key)
		case t.Operator != "" && t.Operator != "Equal" && t.Operator != "Exists":
			return bad("GPUTolerations", "has an invalid operator %q (Equal or Exists)", t.Operator)
		case t.Operator == "Exists" && t.Value != "":
			return bad("GPUTolerations", "has a value with operator Exists (key %q)", t.Key)
		case t.Effect != "" && t.Effect != "NoSchedule" && t.Effect != "PreferNoSchedule" && t.Effect != "NoExecute":
			return bad("GPUTolerations", "has an invalid effect %q", t.Effect)
		}
	}
	if c.GPURuntimeClass != "" && len(validation.IsDNS1123Subdomain(c.GPURuntimeClass)) > 0 {
		return bad("GPURuntimeClass", "must be a DNS subdomain (got %q)", c.GPURuntimeClass)
	}
	allowed := baselineCapabilities
	switch c.PodSecurity {
	case PodSecurityBaseline:
	case PodSecurityRestricted:
		allowed = []string{"NET_BIND_SERVICE"}
		if c.RunAsUser < 1 {
			return bad("RunAsUser", "must be a non-root user ID with the restricted policy (got %d)", c.RunAsUser)
		}
	default:
		return bad("PodSecurity", "must be %q or %q (got %q)", PodSecurityBaseline, PodSecurityRestricted, c.PodSecurity)
	}
	if c.RunAsUser < 0 {
		return bad("RunAsUser", "must not be negative (got %d)", c.RunAsUser)
	}
	for _, cp := range c.Capabilities {
		if !slices.Contains(allowed, capName(cp)) {
			return bad("Capabilities", "may not add %q under the %s policy (allowed: %s)", cp, c.PodSecurity, strings.Join(allowed, ", "))
		}
	}
	if c.HomeStorageClass != "" {
		if len(validation.IsDNS1123Subdomain(c.HomeStorageClass)) > 0 {
			return bad("HomeStorageClass", "must be a DNS subdomain (got %q)", c.HomeStorageClass)
		}
		if c.HomeSize < 64*mib {
			return bad("HomeSize", "must be at least 64 MiB (got %d)", c.HomeSize)
		}
	}
	if err := checkTemplate(c.HomeTarget); err != nil {
		return bad("HomeTarget", "%v", err)
	}
	if c.TokenLifetime < 10*time.Minute || c.TokenLifetime > 48*time.Hour {
		return bad("TokenLifetime", "must be between 10m and 48h (got %s)", c.TokenLifetime)
	}
	if c.SharedRepairEvery < 0 {
		return bad("SharedRepairEvery", "must not be negative (got %s)", c.SharedRepairEvery)
	}
	return c.validateShared()
}

// minMemory is the smallest memory a pod, a default or a quota may have.
const minMemory = 6 * mib

func capName(cp string) string { return strings.TrimPrefix(strings.ToUpper(cp), "CAP_") }

// capabilities is the allow-list as Kubernetes spells it, sorted, without duplicates.
func (c Config) capabilities() []string {
	out := make([]string, 0, len(c.Capabilities))
	for _, cp := range c.Capabilities {
		out = append(out, capName(cp))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkTemplate checks a path template: absolute, clean, containing {user} once.
func checkTemplate(t string) error {
	if !strings.HasPrefix(t, "/") {
		return fmt.Errorf("must be an absolute path (got %q)", t)
	}
	if strings.Count(t, "{user}") != 1 {
		return fmt.Errorf("must contain {user} once (got %q)", t)
	}
	if path.Clean(t) != t || strings.ContainsAny(t, "\x00:") {
		return fmt.Errorf("must be a clean path without ':' (got %q)", t)
	}
	return nil
}

func expand(template, user string) string { return strings.ReplaceAll(template, "{user}", user) }

// quota returns the quota for a role.
func (c Config) quota(r backend.Role) Quota {
	if r == backend.RoleTA {
		return c.TA
	}
	return c.Student
}

// selectors are the labels every managed namespace carries and every lookup requires.
func (c Config) selectors() map[string]string {
	m := maps.Clone(c.Labels)
	if m == nil {
		m = map[string]string{}
	}
	m[LabelManaged] = "true"
	return m
}

func roleWord(r backend.Role) string {
	if r == backend.RoleTA {
		return "TAs"
	}
	return "students"
}

// cpuQuantity is n cores as a quantity ("500m", "2").
func cpuQuantity(n float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Round(n*1000)), resource.DecimalSI)
}

// memQuantity is n bytes as a quantity ("2Gi").
func memQuantity(n int64) resource.Quantity { return *resource.NewQuantity(n, resource.BinarySI) }

// formatBytes is "512 MiB", "2.0 GiB".
func formatBytes(n int64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/float64(gib))
	case n >= mib:
		return fmt.Sprintf("%d MiB", n/mib)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
