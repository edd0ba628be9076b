package kubelab

import (
	"fmt"
	"strings"
)

// NodeAnnotation marks the nodes this lab's kwok manages.
const NodeAnnotation = "kwok.x-k8s.io/node"

// kwokConfig renders kwok's --config file: its options, the Stages that move
// nodes and pods through their lifecycle (kwok v0.8 ships none built in), and
// the cluster-wide exec, logs and port-forward rules for fake pods. Exec'd
// commands carry ExecMarkerEnv (the lab's directory) so Stop finds and ends
// every one of them.
func kwokConfig(o kwokOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: %q
  nodeIP: %q
  nodePort: %d
  serverAddress: %q
  tlsCertFile: %q
  tlsPrivateKeyFile: %q
  manageNodesWithAnnotationSelector: %q
  enableDebuggingHandlers: true
  podPlayStageParallelism: 16
  nodePlayStageParallelism: 32
  nodeLeaseParallelism: 16
`, o.CIDR, o.NodeIP, o.Port, fmt.Sprintf("%s:%d", o.NodeIP, o.Port), o.CertFile, o.KeyFile, NodeAnnotation+"=fake")
	stage := stageNodeInitialize
	if o.KubeletPort != 0 {
		// The API server reaches the nodes' kubelet API through the lab's
		// exec proxy, which forwards to kwok's own port.
		stage = strings.Replace(stage, "Port: {{ NodePort }}", fmt.Sprintf("Port: %d", o.KubeletPort), 1)
	}
	b.WriteString(stage)
	b.WriteString(stagePodReady)
	b.WriteString(stagePodDelete)
	fmt.Fprintf(&b, `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: lab-exec
spec:
  execs:
  - local:
      workDir: %q
      envs:
      - name: %s
        value: %q
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: lab-logs
spec:
  logs:
  - logsFile: %q
    follow: true
`, o.WorkDir, ExecMarkerEnv, o.WorkDir, o.LogsFile)
	return b.String()
}

type kwokOptions struct {
	CIDR, NodeIP      string
	Port              int
	CertFile, KeyFile string
	WorkDir, LogsFile string
	// KubeletPort is the port the nodes advertise for their kubelet API;
	// zero means kwok's own Port.
	KubeletPort int
}

// stageNodeInitialize makes a new fake node Ready with addresses, capacity
// and node info, keeping whatever the creator already set.
const stageNodeInitialize = `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
        lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      addresses:
      - type: InternalIP
        address: {{ NodeIP | Quote }}
      - type: Hostname
        address: {{ .metadata.name | Quote }}
      daemonEndpoints:
        kubeletEndpoint:
          Port: {{ NodePort }}
      allocatable:
        cpu: "64"
        memory: 256Gi
        pods: "1000"
      capacity:
        cpu: "64"
        memory: 256Gi
        pods: "1000"
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        osImage: kwok
        kernelVersion: kwok
        containerRuntimeVersion: kwok
        kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
        kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}
        bootID: ""
        machineID: ""
        systemUUID: ""
      phase: Running
`

// stagePodReady turns a scheduled pod Running and Ready with a pod IP from
// its node's podCIDR (or kwok's default CIDR).
const stagePodReady = `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range list "Initialized" "Ready" "ContainersReady" "PodScheduled" }}
      - type: {{ . }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      {{ range .spec.readinessGates }}
      - type: {{ .conditionType | Quote }}
        status: "True"
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: {{ printf "kwok://%s" .image | Quote }}
        containerID: {{ printf "kwok://%s" .name | Quote }}
        ready: true
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
`

// stagePodDelete finishes deleting a pod once the API server marked it for
// deletion (a real kubelet would stop its containers first).
const stagePodDelete = `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
`
