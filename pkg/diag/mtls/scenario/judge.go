package scenario

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// judgeCase checks a case against the verdict report, both ways.
func judgeCase(c *Case, rep *mtls.Report, port uint16) {
	if c.Result == CaseSkipped {
		return
	}
	var rows []mtls.Row
	for _, p := range rep.Pairs {
		if p.Client.Addr == c.fromIP && p.Server.Addr == c.toIP {
			rows = append(rows, p.Rows...)
		}
	}
	var seen []string
	var hbonePass, onHBONEPort, appPayload, appPlain bool
	failed, unproven := "", ""
	for _, r := range rows {
		seen = append(seen, fmt.Sprintf("%s on %d", r.Class, r.Port))
		switch {
		case r.Port == pcap.HBONEPort:
			onHBONEPort = true
			hbonePass = hbonePass || r.Verdict == mtls.Pass && r.Class == pcap.ClassHBONE
		case r.Port == port && r.PayloadBytes > 0:
			appPayload = true
			appPlain = appPlain || r.Class == pcap.ClassPlaintext
		}
		if r.Verdict == mtls.Fail && failed == "" {
			failed = fmt.Sprintf("port %d: %s", r.Port, r.Reason)
		}
		if r.Verdict == mtls.Warn && unproven == "" {
			unproven = fmt.Sprintf("port %d: %s", r.Port, r.Reason)
		}
	}
	sort.Strings(seen)
	c.Observed = strings.Join(seen, ", ")
	if c.Observed == "" {
		c.Observed = "nothing captured"
	}
	c.Result, c.Reason = CaseFail, ""
	switch {
	case len(rows) == 0:
		// Nothing between them in the capture: no proof either way.
		c.Result, c.Reason = CaseInconclusive, "nothing captured between them: the capture cannot see this traffic"
	case c.Expected == ExpectHBONE && failed != "":
		c.Reason = failed
	case c.Expected == ExpectHBONE && !hbonePass && unproven != "":
		c.Result, c.Reason = CaseInconclusive, unproven
	case c.Expected == ExpectHBONE && !hbonePass:
		c.Reason = "no HBONE mTLS on 15008 between the ambient workloads"
	case c.Expected == ExpectHBONE:
		c.Result, c.Reason = CasePass, "HBONE mTLS on 15008, no payload on the app port"
	case c.NegativeControl && !appPlain:
		c.Reason = "negative control saw no plaintext: the capture cannot see this traffic"
	case onHBONEPort:
		c.Reason = "HBONE on 15008 although an end is outside the mesh"
	case !appPayload:
		c.Reason = fmt.Sprintf("no payload on app port %d captured", port)
	case c.NegativeControl:
		c.Result, c.Reason = CasePass, "plaintext seen: the capture sees traffic outside the mesh"
	default:
		c.Result, c.Reason = CasePass, fmt.Sprintf("direct to app port %d, as expected with an end outside the mesh", port)
	}
	if c.Result != CasePass && c.TrafficError != "" {
		c.Reason += "; the client command failed: " + c.TrafficError
	}
}
