package waypoint

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// DeleteConfig is one `waypoint delete`.
type DeleteConfig struct {
	Namespace string
	Name      string
	// Force deletes a waypoint that something still uses (their traffic then
	// skips L7 policy).
	Force  bool
	DryRun bool
}

// DeleteReport is what delete did.
type DeleteReport struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Action is deleted, would delete or absent.
	Action string `json:"action"`
	// Users are the objects that still pointed at it.
	Users []Binding `json:"users,omitempty"`
}

// Delete removes a waypoint Gateway. It refuses while namespaces, Services,
// ServiceEntries or pods still point at it unless cfg.Force: a
// use-waypoint label naming a missing waypoint fails open.
func Delete(ctx context.Context, c *kube.Clients, cfg DeleteConfig) (*DeleteReport, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	rep, err := List(ctx, c, ListConfig{Namespace: cfg.Namespace, Name: cfg.Name})
	out := &DeleteReport{Namespace: cfg.Namespace, Name: cfg.Name}
	if errors.Is(err, ErrNotFound) {
		out.Action = "absent"
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	w := rep.Waypoints[0]
	for _, n := range w.Namespaces {
		out.Users = append(out.Users, Binding{Kind: "Namespace", Name: n, Waypoint: cfg.Namespace + "/" + cfg.Name})
	}
	out.Users = append(out.Users, w.Services...)
	out.Users = append(out.Users, w.ServiceEntries...)
	out.Users = append(out.Users, w.Workloads...)
	if len(out.Users) > 0 && !cfg.Force {
		return out, fmt.Errorf("delete waypoint %s/%s: %w by %d object(s), first %s %s/%s: their traffic would skip L7 policy; remove their %s label first",
			cfg.Namespace, cfg.Name, ErrInUse, len(out.Users), out.Users[0].Kind, out.Users[0].Namespace, out.Users[0].Name, ambient.LabelUseWaypoint)
	}
	g, _ := Discover(c.Discovery)
	po := metav1.DeleteOptions{}
	out.Action = "deleted"
	if cfg.DryRun {
		po.DryRun = []string{metav1.DryRunAll}
		out.Action = "would delete"
	} else if err := kube.Require(ctx, c.Kube, []kube.Permission{{Verb: "delete", Group: g.Gateway.Group, Resource: g.Gateway.Resource, Namespace: cfg.Namespace}}); err != nil {
		return nil, fmt.Errorf("delete waypoint %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	if err := c.Dynamic.Resource(g.Gateway).Namespace(cfg.Namespace).Delete(ctx, cfg.Name, po); err != nil {
		if apierrors.IsNotFound(err) {
			out.Action = "absent"
			return out, nil
		}
		return nil, fmt.Errorf("delete waypoint Gateway %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	return out, nil
}
