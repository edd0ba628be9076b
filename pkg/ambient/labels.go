package ambient

// Labels ambient is driven by (Istio's ambient and waypoint documentation).
const (
	// LabelDataplaneMode enrolls a namespace (value ambient) or opts a pod
	// out (value none).
	LabelDataplaneMode = "istio.io/dataplane-mode"
	// LabelInjection is the classic sidecar injection label (value enabled).
	LabelInjection = "istio-injection"
	// LabelRev selects a revisioned control plane (and sidecar injector).
	LabelRev = "istio.io/rev"
	// LabelUseWaypoint routes a namespace's or workload's traffic through a
	// waypoint.
	LabelUseWaypoint = "istio.io/use-waypoint"
	// LabelUseWaypointNamespace names the namespace of the waypoint that
	// LabelUseWaypoint points at.
	LabelUseWaypointNamespace = "istio.io/use-waypoint-namespace"
	// LabelWaypointFor marks a Gateway as a waypoint and says for what
	// traffic (service, workload, all or none).
	LabelWaypointFor = "istio.io/waypoint-for"
)

// Values of LabelDataplaneMode.
const (
	// DataplaneAmbient enrolls a namespace or pod.
	DataplaneAmbient = "ambient"
	// DataplaneNone opts a pod out of an enrolled namespace.
	DataplaneNone = "none"
)

// Annotations ambient is driven by.
const (
	// AnnotationRedirection is written by istio-cni on captured pods; its
	// value is RedirectionPending or RedirectionEnabled.
	AnnotationRedirection = "ambient.istio.io/redirection"
	// AnnotationSidecarStatus is written by the sidecar injector on every
	// injected pod.
	AnnotationSidecarStatus = "sidecar.istio.io/status"
)

// Values of AnnotationRedirection.
const (
	// RedirectionEnabled means the pod's traffic is captured by ztunnel.
	RedirectionEnabled = "enabled"
	// RedirectionPending means redirection rules exist but ztunnel has not
	// accepted the pod yet.
	RedirectionPending = "pending"
)

// Names of Istio objects and containers.
const (
	// WaypointClass is the GatewayClass of Istio waypoints.
	WaypointClass = "istio-waypoint"
	// ProxyContainer is the name of the injected sidecar container.
	ProxyContainer = "istio-proxy"
	// ZtunnelDaemonSet is the name of ztunnel's DaemonSet.
	ZtunnelDaemonSet = "ztunnel"
	// CNIDaemonSet is the name of the istio-cni node agent's DaemonSet.
	CNIDaemonSet = "istio-cni-node"
	// ZtunnelSelector selects ztunnel pods.
	ZtunnelSelector = "app=ztunnel"
	// IstiodSelector selects istiod Deployments (and their pods).
	IstiodSelector = "app=istiod"
	// LabelAppVersion is the recommended Kubernetes label Istio's charts set
	// to the chart's version on their Deployments and DaemonSets.
	LabelAppVersion = "app.kubernetes.io/version"
)

// Waypoint conditions and values (Gateway API and Istio's ambient status).
const (
	// ConditionWaypointBound is the condition istiod writes on Services and
	// ServiceEntries that use a waypoint.
	ConditionWaypointBound = "istio.io/WaypointBound"
	// ConditionProgrammed is the Gateway API condition a waypoint Gateway
	// carries once istiod has deployed it.
	ConditionProgrammed = "Programmed"
	// WaypointPort is the waypoint's HBONE listener port.
	WaypointPort = 15008
	// WaypointProtocol is the protocol of the waypoint's listener.
	WaypointProtocol = "HBONE"
	// UseWaypointNone opts a Service or pod out of its namespace's waypoint.
	UseWaypointNone = "none"
)
