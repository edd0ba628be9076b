package mtls

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit is a JUnit XML report (the schema CI systems read: testsuites >
// testsuite > testcase with an optional failure). No JUnit library is among
// the project's approved dependencies, so encoding/xml writes it.
type JUnit struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one testsuite.
type JUnitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []JUnitCase `xml:"testcase"`
}

// JUnitCase is one testcase; Failure is nil when it passed.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *JUnitFailure `xml:"failure,omitempty"`
	Skipped   *JUnitSkipped `xml:"skipped,omitempty"`
}

// JUnitFailure says why a testcase failed: Type is the verdict word.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnitSkipped marks a testcase that did not run.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// NewJUnit starts a report with one suite named name.
func NewJUnit(name string) *JUnit {
	return &JUnit{Name: name, Suites: []JUnitSuite{{Name: name}}}
}

// Add appends a testcase: passed when failType is empty, skipped when
// failType is "SKIPPED", else failed with that type.
func (j *JUnit) Add(class, name, failType, message, detail string) {
	c := JUnitCase{Name: name, ClassName: class}
	s := &j.Suites[0]
	switch failType {
	case "":
	case "SKIPPED":
		c.Skipped = &JUnitSkipped{Message: message}
		s.Skipped++
	default:
		c.Failure = &JUnitFailure{Message: message, Type: failType, Text: detail}
		s.Failures++
		j.Failures++
	}
	s.Cases = append(s.Cases, c)
	s.Tests++
	j.Tests++
}

// AddExpectations appends one testcase per expected pair, named FROM->TO
// as given, failed (type FAIL) when it was missing or did not pass.
func (j *JUnit) AddExpectations(class string, es []ExpectationResult) {
	for _, e := range es {
		typ := ""
		if !e.Passed {
			typ = string(OutcomeFail)
		}
		j.Add(class, e.String(), typ, e.Reason, "")
	}
}

// Write writes the XML document.
func (j *JUnit) Write(w io.Writer) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(j); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// JUnitReport is the report as JUnit: one testcase per judged pair (both
// ends in the mesh; WARN, not proven, fails like FAIL), one per --expect
// pair, and one for the run's verdict, where INCONCLUSIVE is a failure of
// type INCONCLUSIVE: a gate must not pass on no proof.
func JUnitReport(rep *Report) *JUnit {
	j := NewJUnit("verify-mtls")
	for _, p := range rep.Pairs {
		if p.Category != CategoryMesh {
			continue
		}
		name := p.Client.Name + " -> " + p.Server.Name
		var lines []string
		msg := ""
		for _, r := range p.Rows {
			lines = append(lines, fmt.Sprintf("port %d %s: %s: %s", r.Port, r.Class, strings.ToUpper(string(r.Verdict)), r.Reason))
			if msg == "" && r.Verdict == p.Verdict {
				msg = r.Reason
			}
		}
		typ := ""
		if p.Verdict != Pass {
			typ = strings.ToUpper(string(p.Verdict))
		}
		j.Add("verify-mtls.pairs", name, typ, msg, strings.Join(lines, "\n"))
	}
	j.AddExpectations("verify-mtls.expect", rep.Expectations)
	typ := ""
	if rep.Verdict != OutcomePass {
		typ = string(rep.Verdict)
	}
	j.Add("verify-mtls", "verdict", typ, strings.Join(rep.Reasons, "; "), strings.Join(rep.Reasons, "\n"))
	return j
}
