package tui

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// WriteTable prints a snapshot as a plain table (what `status --once` and a
// non-terminal `tui` print): the same columns as the TUI, no colour, and
// every reason of a node on its own line below it.
func WriteTable(w io.Writer, s *ztunnel.Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tNODE\tZTUNNEL\tRESTARTS\tVERSION\tPROXIES\tPODS\tCONN/S\tFAIL/S\tBYTES/S\tREASON")
	for i := range s.Nodes {
		n := &s.Nodes[i]
		cells := make([]any, 0, len(columns))
		for _, c := range columns {
			switch c.title {
			case "NODE":
				cells = append(cells, n.Node)
			case "AGE", "SEEN":
				continue
			default:
				cells = append(cells, c.cell(n, s.Time))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cells...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := s.Totals
	istio := s.IstioVersion
	if istio == "" {
		istio = "unknown"
	}
	_, err := fmt.Fprintf(w, "\n%d nodes: %d healthy, %d warning, %d unhealthy, %d unknown · %d ztunnels (Istio %s) · %d captured pods\n",
		t.Nodes, t.Healthy, t.Warning, t.Unhealthy, t.Unknown, t.Ztunnels, istio, t.Captured)
	if err != nil {
		return err
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		for _, r := range n.Reasons {
			if r.Severity == ztunnel.StateHealthy {
				continue
			}
			if _, err := fmt.Fprintf(w, "%s %s: %s (%s)\n", r.Severity.Symbol(), n.Node, r.Message, r.Code); err != nil {
				return err
			}
		}
	}
	return nil
}
