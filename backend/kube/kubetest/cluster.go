// Package kubetest is test support for code that uses a real Kubernetes API server: one
// cluster per test process — etcd, kube-apiserver (RBAC and Pod Security admission on),
// kube-controller-manager, kube-scheduler and kwok with fake nodes that have GPUs — built from
// the Go module proxy by .ci/kubetools/build and found through WM_KUBE_BIN; Services that
// run as a ServiceAccount holding only kube.KubeRBAC; and removal of every namespace a test
// makes.
//
// Tests fail, never skip, when the programs are missing; the message says how to build them.
package kubetest

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// EnvBin names the variable that points at the built programs.
const EnvBin = "WM_KUBE_BIN"

// Programs are what WM_KUBE_BIN must hold: the cluster's, and kubectl for tests that use a
// student's kubeconfig as students do.
var Programs = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// GPUs per fake node, and the fake nodes.
const (
	NodeGPUs = 2
	Nodes    = 2
)

// Log lines every pod's logs read (kwok serves one file for all pods).
var (
	LogLines         = []string{"hello from the pod", "second line", "third line"}
	PreviousLogLines = []string{"from the run before"}
)

//go:embed kwok.yaml
var kwokConfig string

// Cluster is a running test cluster.
type Cluster struct {
	Dir        string       // everything it writes: certificates, etcd data, logs
	Bin        string       // where the programs are
	Server     string       // https://127.0.0.1:PORT
	Kubeconfig string       // an administrator's kubeconfig (system:masters)
	Admin      *rest.Config // the same as a rest.Config
	Client     kubernetes.Interface
	CAFile     string
	EchoAddr   string // where every port-forward ends: a TCP echo server

	pki   pki
	procs []*proc
	echo  net.Listener
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Get returns the process's cluster, starting it on first use; it fails the test if the
// cluster cannot start. Call Main from TestMain so it is stopped at the end.
func Get(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		shared.cluster, shared.err = Start(ctx)
		if shared.err == nil {
			t.Logf("test cluster up in %s", time.Since(start).Round(time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatalf("test cluster: %v", shared.err)
	}
	return shared.cluster
}

// Main runs the tests and stops the cluster if one was started.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// StopShared stops the process's cluster if one was started, for a TestMain that does
// more than Main.
func StopShared() {
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
}

// BinDir returns WM_KUBE_BIN, or an error saying how to build the programs if it is unset
// or lacks one of them.
func BinDir() (string, error) {
	dir := os.Getenv(EnvBin)
	how := "build them with: export " + EnvBin + "=$(.ci/kubetools/build)   (from the repository root; the first build takes several minutes)"
	if dir == "" {
		return "", errors.New(EnvBin + " is not set; " + how)
	}
	for _, p := range Programs {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s=%s has no program %s; %s", EnvBin, dir, p, how)
		}
	}
	return dir, nil
}

// Kubectl returns the path of the kubectl built with the cluster's programs.
func (c *Cluster) Kubectl() string { return filepath.Join(c.Bin, "kubectl") }

// Start starts a new cluster and waits until it schedules pods.
func Start(ctx context.Context) (_ *Cluster, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wm-kube-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Bin: bin}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.pki, err = writePKI(dir); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	c.CAFile = c.pki.CA
	if err := c.writeLogs(); err != nil {
		return nil, err
	}
	if err := c.startEcho(); err != nil {
		return nil, err
	}
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kwokPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	if c.Kubeconfig, err = c.writeKubeconfig("admin.kubeconfig", c.pki.Admin, c.pki.AdminKey); err != nil {
		return nil, err
	}
	c.Admin = &rest.Config{
		Host:            c.Server,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.pki.CA, CertFile: c.pki.Admin, KeyFile: c.pki.AdminKey},
		QPS:             100, Burst: 200,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Admin); err != nil {
		return nil, err
	}

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if err := c.start("etcd",
		"--name=test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=test="+peerURL, "--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := c.start("kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+c.pki.Server, "--tls-private-key-file="+c.pki.ServerKey,
		"--client-ca-file="+c.pki.CA,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.pki.SAPub, "--service-account-signing-key-file="+c.pki.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none",
		"--kubelet-client-certificate="+c.pki.Admin, "--kubelet-client-key="+c.pki.AdminKey,
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false", "--v=0",
	); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	cfg := strings.NewReplacer("@DIR@", dir, "@ECHOPORT@", strconv.Itoa(c.echo.Addr().(*net.TCPAddr).Port)).Replace(kwokConfig)
	kwokCfg := filepath.Join(dir, "kwok.yaml")
	if err := os.WriteFile(kwokCfg, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	kc := "--kubeconfig=" + c.Kubeconfig
	if err := c.start("kube-controller-manager", kc,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--controllers=*,-nodeipam", "--use-service-account-credentials",
		"--service-account-private-key-file="+c.pki.SAKey, "--root-ca-file="+c.pki.CA,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
	); err != nil {
		return nil, err
	}
	if err := c.start("kube-scheduler", kc,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
	); err != nil {
		return nil, err
	}
	if err := c.start("kwok", kc, "--config="+kwokCfg,
		"--manage-all-nodes=true", "--node-ip=127.0.0.1", "--node-port="+strconv.Itoa(kwokPort),
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort),
		"--tls-cert-file="+c.pki.Server, "--tls-private-key-file="+c.pki.ServerKey,
	); err != nil {
		return nil, err
	}
	if err := c.makeNodes(ctx); err != nil {
		return nil, err
	}
	if err := c.waitControllers(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// start runs one program with its output in DIR/NAME.log.
func (c *Cluster) start(name string, args ...string) error {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(c.Bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = f, f
	// The programs die with the test process, also when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

// failed names the programs that have exited, with the end of their logs.
func (c *Cluster) failed() error {
	var errs []error
	for _, p := range c.procs {
		select {
		case <-p.done:
			errs = append(errs, fmt.Errorf("%s exited (%v); its log ends:\n%s", p.name, p.cmd.ProcessState, tail(p.log, 2000)))
		default:
		}
	}
	return errors.Join(errs...)
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitFor polls cond every 100 ms until it holds, a program exits or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, what string, cond func(context.Context) error) error {
	var last error
	for {
		if err := c.failed(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if last = cond(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v); logs in %s", what, ctx.Err(), last, c.Dir)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitReady(ctx context.Context) error {
	return c.waitFor(ctx, "kube-apiserver", func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		b, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		if err != nil {
			return fmt.Errorf("%v %s", err, bytes.TrimSpace(b))
		}
		return nil
	})
}

// makeNodes creates the fake nodes, each with NodeGPUs GPUs, and waits until they are Ready.
func (c *Cluster) makeNodes(ctx context.Context) error {
	for i := range Nodes {
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("32"),
			corev1.ResourceMemory: resource.MustParse("128Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
			"nvidia.com/gpu":      *resource.NewQuantity(NodeGPUs, resource.DecimalSI),
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        "kwok-node-" + strconv.Itoa(i),
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/hostname": "kwok-node-" + strconv.Itoa(i)},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node: %w", err)
		}
	}
	return c.waitFor(ctx, "nodes Ready and schedulable", func(ctx context.Context) error {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, n := range nodes.Items {
			ready := false
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if !ready {
				return fmt.Errorf("node %s not Ready", n.Name)
			}
			for _, t := range n.Spec.Taints {
				if t.Effect == corev1.TaintEffectNoSchedule {
					return fmt.Errorf("node %s still tainted %s", n.Name, t.Key)
				}
			}
		}
		return nil
	})
}

// waitControllers waits until the controllers run (the default ServiceAccount exists).
func (c *Cluster) waitControllers(ctx context.Context) error {
	return c.waitFor(ctx, "kube-controller-manager", func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// Stop ends every program (SIGTERM, SIGKILL after a short grace) and removes Dir.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if c.echo != nil {
		_ = c.echo.Close()
	}
	if c.Dir != "" {
		_ = os.RemoveAll(c.Dir)
	}
}

// writeKubeconfig writes a kubeconfig for a client certificate into Dir.
func (c *Cluster) writeKubeconfig(name, cert, key string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthority: c.pki.CA}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificate: cert, ClientKey: key}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user"}
	cfg.CurrentContext = "test"
	path := filepath.Join(c.Dir, name)
	return path, clientcmd.WriteToFile(*cfg, path)
}

// writeLogs writes the CRI-format files kwok serves as every pod's logs.
func (c *Cluster) writeLogs() error {
	write := func(name string, lines []string) error {
		var b strings.Builder
		t := time.Now().Add(-time.Minute).UTC()
		for i, l := range lines {
			fmt.Fprintf(&b, "%s stdout F %s\n", t.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), l)
		}
		return os.WriteFile(filepath.Join(c.Dir, name), []byte(b.String()), 0o600)
	}
	if err := write("pod.log", LogLines); err != nil {
		return err
	}
	return write("previous.log", PreviousLogLines)
}

// startEcho serves a TCP echo on 127.0.0.1: what every port-forward reaches.
func (c *Cluster) startEcho() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.echo = l
	c.EchoAddr = l.Addr().String()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	return nil
}

// freePorts finds n free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
