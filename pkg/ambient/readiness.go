package ambient

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Readiness is what a Deployment's or DaemonSet's status says about its pods.
type Readiness struct {
	// Want is the desired replicas (a Deployment) or the nodes the
	// DaemonSet should run on (its desiredNumberScheduled).
	Want int32
	// Ready is the number of ready pods.
	Ready int32
	// Observed says the controller has seen the object's latest spec.
	Observed bool
	// RolledOut says the rollout is complete: observed, every pod updated
	// and available, no old pod left.
	RolledOut bool
	// Detail is "2/3 replicas available", "1/2 nodes ready" or why the
	// rollout is not yet judged.
	Detail string
}

// Serving says at least the wanted number of pods are ready, whether or not
// a rollout is in progress (what a health check asks).
func (r Readiness) Serving() bool { return r.Want > 0 && r.Ready >= r.Want }

const notObserved = "rollout not yet observed by the controller"

// DeploymentReadiness reads a Deployment's status. It is rolled out when the
// controller saw the latest spec, the Available condition holds, every
// replica is updated and available, and no old replica is left.
func DeploymentReadiness(d *appsv1.Deployment) Readiness {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	r := Readiness{Want: want, Ready: s.ReadyReplicas, Observed: s.ObservedGeneration >= d.Generation,
		Detail: fmt.Sprintf("%d/%d replicas available", s.AvailableReplicas, want)}
	if !r.Observed {
		r.Detail = notObserved
		return r
	}
	available := false
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			available = true
		}
	}
	r.RolledOut = available && s.UpdatedReplicas == want && s.AvailableReplicas >= want && s.Replicas == s.UpdatedReplicas
	return r
}

// DaemonSetReadiness reads a DaemonSet's status. It is rolled out when an
// updated, ready and available pod runs on every node it should run on (the
// controller's desiredNumberScheduled already accounts for node selectors,
// affinity and taints).
func DaemonSetReadiness(ds *appsv1.DaemonSet) Readiness {
	s := ds.Status
	r := Readiness{Want: s.DesiredNumberScheduled, Ready: s.NumberReady, Observed: s.ObservedGeneration >= ds.Generation,
		Detail: fmt.Sprintf("%d/%d nodes ready", s.NumberReady, s.DesiredNumberScheduled)}
	if !r.Observed {
		r.Detail = notObserved
		return r
	}
	r.RolledOut = s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberReady == s.DesiredNumberScheduled &&
		s.NumberAvailable == s.DesiredNumberScheduled
	return r
}
