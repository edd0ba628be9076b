// Package kubelab runs the lab: a real Kubernetes control plane on this
// machine (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
// with kwok simulating nodes and pods. Integration tests start one lab per
// test binary with Main and reach it with Get; the hack/lab command keeps one
// running in the background for the demo.
package kubelab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// ErrNotBuilt is returned (wrapped) when the lab's binaries are missing.
var ErrNotBuilt = errors.New("lab binaries not built: run hack/lab/build.sh")

// RestrictedUser is the user of RestrictedKubeconfig. Its ClusterRole allows
// only get, list and watch on namespaces and pods.
const RestrictedUser = "lab-restricted"

// NodePrefix starts the name of every fake node.
const NodePrefix = "lab-node-"

// Options configures a lab.
type Options struct {
	// Nodes is the number of fake nodes created at start (default 3).
	Nodes int
	// Dir is the lab's working directory (certificates, kubeconfigs, logs,
	// pid files). Empty means a fresh temporary directory removed on Stop.
	Dir string
	// Detached leaves the processes running when this process exits (for
	// `lab up`); otherwise the kernel kills them if this process dies.
	Detached bool
	// BinDir overrides where the binaries are found (default DefaultBinDir).
	BinDir string
}

// Lab is a running lab.
type Lab struct {
	// Kubeconfig is the admin kubeconfig (user lab-admin, group system:masters).
	Kubeconfig string
	// RestrictedKubeconfig authenticates as RestrictedUser.
	RestrictedKubeconfig string
	// Config is the admin client configuration.
	Config *rest.Config
	// Clients are admin clients built with kube.NewClients.
	Clients *kube.Clients
	// Nodes are the fake nodes' names, in creation order.
	Nodes []string
	// BinDir holds the lab's binaries (kubectl, helm, kube-apiserver, ...).
	BinDir string
	// Dir is the lab's working directory.
	Dir string
	// PodCIDR holds every pod IP of this lab.
	PodCIDR string
	// NetNS is the network namespace where pod IPs are local addresses;
	// empty when the lab runs without one (not root).
	NetNS string
	// Server is the API server's URL.
	Server string

	opts      Options
	procs     []*process
	net       *podNet
	etcdData  string
	logsFile  string
	ownDir    bool
	mu        sync.Mutex
	nextNode  int
	stopOnce  sync.Once
	logs      podLogs
	phases    []string
	lastPhase time.Time
	forwards  portForwards
	startedAt time.Time
	reaped    int
	leftover  string
	exec      *execProxy
}

// ExecProcesses lists the processes (pid and command line) still running that
// kwok started for `kubectl exec` into this lab's pods, or that those started.
// Empty when none run.
func (l *Lab) ExecProcesses() string { return describePids(execProcesses(l.Dir)) }

// StopReport says what Stop had to end and what outlived it: the processes
// that kwok exec'd and nobody ended (Stop ends them), and any that survived
// even SIGKILL. Empty before Stop and when nothing was left.
func (l *Lab) StopReport() (reaped int, leftover string) { return l.reaped, l.leftover }

// DefaultBinDir is where hack/lab/build.sh puts the binaries:
// $LAB_HOME/bin, or $XDG_CACHE_HOME (~/.cache)/kubectl-ambient/lab/bin.
func DefaultBinDir() string {
	if h := os.Getenv("LAB_HOME"); h != "" {
		return filepath.Join(h, "bin")
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "kubectl-ambient", "lab", "bin")
}

type binaries struct {
	etcd, apiserver, controllerManager, scheduler, kwok, kubectl string
}

func findBinaries(dir string) (binaries, error) {
	var b binaries
	var missing []string
	find := func(name string, path bool) string {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				return r
			}
			return p
		}
		if path {
			if p, err := exec.LookPath(name); err == nil {
				if r, err := filepath.EvalSymlinks(p); err == nil {
					return r
				}
				return p
			}
		}
		missing = append(missing, name)
		return ""
	}
	b.etcd = find("etcd", true)
	b.apiserver = find("kube-apiserver", false)
	b.controllerManager = find("kube-controller-manager", false)
	b.scheduler = find("kube-scheduler", false)
	b.kwok = find("kwok", false)
	b.kubectl = find("kubectl", false)
	if len(missing) > 0 {
		return b, fmt.Errorf("%w (missing %s in %s; etcd may also come from PATH)", ErrNotBuilt, strings.Join(missing, ", "), dir)
	}
	return b, nil
}

// Built reports whether the lab's binaries are present, with the reason when not.
func Built() error {
	_, err := findBinaries(DefaultBinDir())
	return err
}

// Start brings up a lab and returns when the API server is ready, the
// default ServiceAccount exists and opts.Nodes fake nodes are Ready. On
// failure everything started is stopped and the error carries the tails of
// the components' logs.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	// Ports are picked free and released before the components bind them;
	// with many labs starting at once another process can take one in
	// between. That start fails cleanly and is retried with new ports.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var l *Lab
		l, err = start(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "address already in use") || ctx.Err() != nil {
			return l, err
		}
		if opts.Dir != "" {
			_ = os.RemoveAll(filepath.Join(opts.Dir, "pids"))
		}
	}
	return nil, err
}

func start(ctx context.Context, opts Options) (lab *Lab, err error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.BinDir == "" {
		opts.BinDir = DefaultBinDir()
	}
	bins, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	l := &Lab{BinDir: opts.BinDir, opts: opts, startedAt: time.Now()}
	if opts.Dir == "" {
		l.Dir, err = os.MkdirTemp("", "kamb-lab-")
		if err != nil {
			return nil, fmt.Errorf("create lab directory: %w", err)
		}
		l.ownDir = true
	} else {
		l.Dir = opts.Dir
		if err := os.MkdirAll(l.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("create lab directory %s: %w", l.Dir, err)
		}
	}
	defer func() {
		if err != nil {
			logs := l.logTails(15)
			l.Stop()
			err = fmt.Errorf("start lab in %s: %w%s", l.Dir, err, logs)
		}
	}()
	cleanupStale()

	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kwokPort, proxyPort := ports[0], ports[1], ports[2], ports[3], ports[4]

	// etcd first: its pid owns the network slot claimed next.
	shm := "/dev/shm"
	if !roomyTmpfs(shm) {
		shm = l.Dir
	}
	l.etcdData, err = os.MkdirTemp(shm, "kamb-etcd-")
	if err != nil {
		return nil, fmt.Errorf("create etcd data directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "etcd-data"), []byte(l.etcdData+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("record etcd data directory: %w", err)
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcdArgs := []string{
		"--name=lab", "--data-dir=" + l.etcdData,
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=lab=" + peerURL, "--initial-cluster-state=new",
		"--snapshot-count=100000", "--quota-backend-bytes=4294967296",
		// One member on loopback: elect itself after 100 ms, not 1 s.
		"--heartbeat-interval=20", "--election-timeout=100",
	}
	if etcdSupportsNoFsync(bins.etcd) {
		etcdArgs = append(etcdArgs, "--unsafe-no-fsync")
	}
	etcd, err := l.start("etcd", bins.etcd, etcdArgs)
	if err != nil {
		return nil, err
	}

	l.phase("etcd started")
	l.net, err = setupPodNet(etcd.pid, l.Dir)
	if err != nil {
		return nil, err
	}
	l.PodCIDR, l.NetNS = l.net.CIDR.String(), l.net.NetNS
	if !opts.Detached {
		if err := l.startWatchdog(); err != nil {
			return nil, err
		}
	}
	if err := l.saveState(); err != nil {
		return nil, err
	}

	p, err := newPKI(filepath.Join(l.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	adv := advertiseAddress()
	serving, err := p.issue("apiserver", "kube-apiserver", nil,
		[]net.IP{net.IPv4(127, 0, 0, 1), adv, net.IPv4(10, 96, 0, 1)},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, true)
	if err != nil {
		return nil, err
	}
	kubeletClient, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil, false)
	if err != nil {
		return nil, err
	}
	admin, err := p.issue("admin", "lab-admin", []string{"system:masters"}, nil, nil, false)
	if err != nil {
		return nil, err
	}
	restricted, err := p.issue("restricted", RestrictedUser, nil, nil, nil, false)
	if err != nil {
		return nil, err
	}
	kwokServing, err := p.issue("kwok", "kwok", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, true)
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := p.serviceAccountKey()
	if err != nil {
		return nil, err
	}
	l.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	l.Kubeconfig = filepath.Join(l.Dir, "kubeconfig")
	l.RestrictedKubeconfig = filepath.Join(l.Dir, "restricted.kubeconfig")
	if err := writeKubeconfig(l.Kubeconfig, l.Server, p.CAFile(), admin, "lab-admin", "kubectl-ambient-lab"); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(l.RestrictedKubeconfig, l.Server, p.CAFile(), restricted, RestrictedUser, "kubectl-ambient-lab-restricted"); err != nil {
		return nil, err
	}

	l.phase("network, pki, kubeconfigs")
	if err := waitHTTP(ctx, etcdURL+"/health", etcd, 30*time.Second); err != nil {
		return nil, fmt.Errorf("etcd not healthy at %s: %w", etcdURL, err)
	}
	l.phase("etcd healthy")
	api, err := l.start("kube-apiserver", bins.apiserver, []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", apiPort), "--advertise-address=" + adv.String(),
		"--tls-cert-file=" + serving.Cert, "--tls-private-key-file=" + serving.Key, "--client-ca-file=" + p.CAFile(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--kubelet-certificate-authority=" + p.CAFile(),
		"--kubelet-client-certificate=" + kubeletClient.Cert, "--kubelet-client-key=" + kubeletClient.Key,
		"--kubelet-preferred-address-types=InternalIP",
		"--allow-privileged=true", "--profiling=false",
		// New nodes start schedulable (kwok makes them Ready at once) instead
		// of waiting for the node lifecycle controller to lift a not-ready taint.
		"--disable-admission-plugins=TaintNodesByCondition",
		"--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
	})
	if err != nil {
		return nil, err
	}

	l.Config, err = clientcmd.BuildConfigFromFlags("", l.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load lab kubeconfig %s: %w", l.Kubeconfig, err)
	}
	l.Config.QPS, l.Config.Burst = kube.DefaultQPS, kube.DefaultBurst
	l.Clients, err = kube.NewClients(l.Config)
	if err != nil {
		return nil, err
	}
	if err := l.waitReady(ctx, api); err != nil {
		return nil, err
	}

	l.phase("apiserver ready")
	if err := l.installKwokCRDs(ctx); err != nil {
		return nil, err
	}
	common := []string{"--kubeconfig=" + l.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--kube-api-qps=500", "--kube-api-burst=1000"}
	if _, err := l.start("kube-controller-manager", bins.controllerManager, append(common,
		"--service-account-private-key-file="+saKey, "--root-ca-file="+p.CAFile(),
		"--use-service-account-credentials=false",
		// kwok renews node leases, but on a busy machine a late renewal
		// must not taint nodes and evict pods mid-test.
		"--node-monitor-grace-period=1h",
	)); err != nil {
		return nil, err
	}
	if _, err := l.start("kube-scheduler", bins.scheduler, common); err != nil {
		return nil, err
	}
	l.logsFile = filepath.Join(l.Dir, "podlogs", "pods.log")
	if err := os.MkdirAll(filepath.Dir(l.logsFile), 0o750); err != nil {
		return nil, fmt.Errorf("create pod log directory: %w", err)
	}
	if err := os.WriteFile(l.logsFile, nil, 0o600); err != nil {
		return nil, fmt.Errorf("create pod log file: %w", err)
	}
	kubeletPort := 0
	if !opts.Detached {
		// A detached lab outlives this process, and with it the proxy: its
		// nodes point straight at kwok, and its exec'd commands end at
		// `lab down` (StopDir).
		l.exec, err = startExecProxy(l.Dir, proxyPort, fmt.Sprintf("127.0.0.1:%d", kwokPort), p.CAFile(), kwokServing)
		if err != nil {
			return nil, err
		}
		kubeletPort = proxyPort
	}
	kwokCfg := filepath.Join(l.Dir, "kwok.yaml")
	if err := writeFile(kwokCfg, []byte(kwokConfig(kwokOptions{
		CIDR: l.net.Default.String(), NodeIP: "127.0.0.1", Port: kwokPort,
		CertFile: kwokServing.Cert, KeyFile: kwokServing.Key,
		WorkDir: l.Dir, LogsFile: l.logsFile, KubeletPort: kubeletPort,
	}))); err != nil {
		return nil, err
	}
	l.phase("controllers started")
	if err := l.waitKwokCRDs(ctx); err != nil {
		return nil, err
	}
	if _, err := l.start("kwok", bins.kwok, []string{"--kubeconfig=" + l.Kubeconfig, "--config=" + kwokCfg,
		"--enable-crds=" + strings.Join(kwokCRDKinds, ",")}); err != nil {
		return nil, err
	}

	l.phase("kwok started")
	if err := l.setupRBAC(ctx); err != nil {
		return nil, err
	}
	if _, err := l.AddNodes(ctx, opts.Nodes); err != nil {
		return nil, err
	}
	l.phase("nodes ready")
	if err := l.waitDefaultServiceAccount(ctx); err != nil {
		return nil, err
	}
	l.phase("default serviceaccount")
	if err := l.saveState(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) start(name, bin string, args []string) (*process, error) {
	p, err := startProcess(l.Dir, name, bin, args, l.opts.Detached)
	if err != nil {
		return nil, err
	}
	l.procs = append(l.procs, p)
	return p, nil
}

// watchdogScript waits for the owner process to die, then removes what the
// kernel does not: the network namespace (only while the slot's claim still
// names this lab), the etcd data and the temporary lab directory. The
// components themselves die with their owner (Pdeathsig); the commands kwok
// exec'd do not, so it kills every process carrying the lab's exec marker
// (ExecMarkerEnv, spelled out in the script).
const watchdogScript = `owner=$1 dir=$2 claim=$3 netns=$4 veth=$5 etcd=$6 owndir=$7 lock=$8
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
for f in /proc/[0-9]*/environ; do
  if grep -qzx "KUBELAB_EXEC=$dir" "$f" 2>/dev/null; then p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; fi
done
if [ -n "$netns" ] && command -v flock >/dev/null 2>&1; then exec 9>>"$lock"; flock 9; fi
if [ -n "$netns" ] && [ "$(sed -n 2p "$claim" 2>/dev/null)" = "$dir" ]; then
  ip link del "$veth" 2>/dev/null; ip netns del "$netns" 2>/dev/null; rm -f "$claim"
fi
rm -rf "$etcd"
if [ "$owndir" = yes ]; then rm -rf "$dir"; fi
`

// startWatchdog starts the clean-up guard for a lab owned by this process.
// A test binary that panics never reaches Stop; the guard still cleans up.
func (l *Lab) startWatchdog() error {
	sh, err := exec.LookPath("sh")
	if err != nil {
		return fmt.Errorf("find sh for the lab watchdog: %w", err)
	}
	if r, err := filepath.EvalSymlinks(sh); err == nil {
		sh = r
	}
	owndir := "no"
	if l.ownDir && os.Getenv("LAB_KEEP") == "" {
		owndir = "yes"
	}
	claim, veth := "", ""
	if l.net.NetNS != "" {
		claim, veth = claimFile(l.net.Slot), l.net.host
	}
	// Detached: the watchdog must outlive the owner it watches.
	p, err := startProcess(l.Dir, "watchdog", sh, []string{"-c", watchdogScript, "sh",
		fmt.Sprint(os.Getpid()), l.Dir, claim, l.net.NetNS, veth, l.etcdData, owndir, filepath.Join(claimDir, ".lock")}, true)
	if err != nil {
		return err
	}
	l.procs = append(l.procs, p)
	return nil
}

func (l *Lab) phase(name string) {
	now := time.Now()
	if l.lastPhase.IsZero() {
		l.lastPhase = l.startedAt
	}
	l.phases = append(l.phases, fmt.Sprintf("%s %s", name, now.Sub(l.lastPhase).Round(time.Millisecond)))
	l.lastPhase = now
}

// StartTimings describes where Start spent its time, phase by phase.
func (l *Lab) StartTimings() string { return strings.Join(l.phases, ", ") }

// Stop stops every component by pid, waits for them, removes the network
// namespace and the lab's temporary directories. It is safe to call twice.
func (l *Lab) Stop() {
	l.stopOnce.Do(func() {
		l.exec.close()
		stopAll(l.procs, 3*time.Second)
		// After kwok: it starts no new ones then.
		if found, left := reapExecs(l.Dir, 2*time.Second); len(left) > 0 {
			l.leftover = describePids(left)
		} else if len(found) > 0 {
			l.reaped = len(found)
		}
		if l.net != nil && l.net.NetNS != "" {
			if unlock, err := lockSlots(); err == nil {
				if claimOwner(l.net.Slot) == l.Dir {
					l.net.teardown()
				}
				unlock()
			}
		}
		if l.etcdData != "" {
			_ = os.RemoveAll(l.etcdData)
		}
		if l.ownDir {
			if os.Getenv("LAB_KEEP") == "" {
				_ = os.RemoveAll(l.Dir)
			} else {
				// Tells cleanupStale that this dead lab is kept on purpose.
				_ = os.WriteFile(filepath.Join(l.Dir, keepFile), nil, 0o600)
			}
		}
	})
}

// logTails formats the last lines of every component's log.
func (l *Lab) logTails(n int) string {
	var b strings.Builder
	for _, p := range l.procs {
		t := tail(p.log, n)
		if t == "" {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s (%s), last %d lines:\n%s", p.name, p.log, n, t)
	}
	return b.String()
}

// deadComponent names the first lab component that has exited, or "".
func (l *Lab) deadComponent() string {
	for _, p := range l.procs {
		if !p.alive() {
			return p.name
		}
	}
	return ""
}

// LogTails returns the last n lines of each component's log, for reports
// when a test against the lab fails in a way the cluster might explain.
func (l *Lab) LogTails(n int) string { return l.logTails(n) }

func (l *Lab) waitReady(ctx context.Context, api *process) error {
	deadline := time.Now().Add(60 * time.Second)
	rc := l.Clients.Discovery.RESTClient()
	var last error
	for time.Now().Before(deadline) {
		if !api.alive() {
			return errors.New("kube-apiserver exited")
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := rc.Get().AbsPath("/readyz").Do(rctx).Raw()
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready at %s after 60s: %w", l.Server, last)
}

func (l *Lab) waitDefaultServiceAccount(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if dead := l.deadComponent(); dead != "" {
			return fmt.Errorf("%s exited", dead)
		}
		_, err := l.Clients.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("default service account not created after 60s: is kube-controller-manager running?")
}

func (l *Lab) setupRBAC(ctx context.Context) error {
	rbac := l.Clients.Kube.RbacV1()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: RestrictedUser},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""},
			Resources: []string{"namespaces", "pods"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	}
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create clusterrole %s: %w", RestrictedUser, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: RestrictedUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: RestrictedUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: RestrictedUser}},
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create clusterrolebinding %s: %w", RestrictedUser, err)
	}
	return nil
}

// Flags returns fresh ConfigFlags pointing at the admin kubeconfig, ready
// for kube.NewFactory.
func (l *Lab) Flags() *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	kc := l.Kubeconfig
	f.KubeConfig = &kc
	return f
}

// RestrictedFlags returns ConfigFlags for the restricted identity.
func (l *Lab) RestrictedFlags() *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	kc := l.RestrictedKubeconfig
	f.KubeConfig = &kc
	return f
}

// RestrictedConfig returns the client configuration of the restricted identity.
func (l *Lab) RestrictedConfig() (*rest.Config, error) {
	c, err := clientcmd.BuildConfigFromFlags("", l.RestrictedKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load restricted kubeconfig %s: %w", l.RestrictedKubeconfig, err)
	}
	c.QPS, c.Burst = kube.DefaultQPS, kube.DefaultBurst
	return c, nil
}

func writeKubeconfig(path, server, caFile string, cert certFiles, user, contextName string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("read lab ca: %w", err)
	}
	crt, err := os.ReadFile(cert.Cert)
	if err != nil {
		return fmt.Errorf("read %s: %w", cert.Cert, err)
	}
	key, err := os.ReadFile(cert.Key)
	if err != nil {
		return fmt.Errorf("read %s: %w", cert.Key, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubectl-ambient-lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts[contextName] = &clientcmdapi.Context{Cluster: "kubectl-ambient-lab", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = contextName
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1. The listeners
// are held until all are chosen so the ports differ; another process could
// still take one before the component binds it, which then fails loudly.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		ls = append(ls, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// advertiseAddress picks this machine's first global IPv4 address. The API
// server refuses a loopback advertise address; it never dials this one, so
// a documentation address stands in on a machine with no other interface.
func advertiseAddress() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := ipn.IP.To4()
			if ip != nil && ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return net.IPv4(198, 51, 100, 1)
}

// roomyTmpfs reports whether dir is a tmpfs with room for an etcd data
// directory (etcd preallocates 64 MB write-ahead log segments; a container's
// default 64 MB /dev/shm is too small).
func roomyTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	const tmpfsMagic = 0x01021994
	return st.Type == tmpfsMagic && st.Bavail*uint64(st.Bsize) >= 1<<30
}

var noFsync struct {
	once sync.Once
	ok   bool
}

func etcdSupportsNoFsync(bin string) bool {
	noFsync.once.Do(func() {
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		noFsync.ok = strings.Contains(string(out), "--unsafe-no-fsync")
	})
	return noFsync.ok
}

func waitHTTP(ctx context.Context, url string, p *process, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !p.alive() {
			return fmt.Errorf("%s exited", p.name)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer after %s: %w", timeout, last)
}
