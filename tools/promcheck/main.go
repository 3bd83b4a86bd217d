// promcheck: the two things the chart tests need from Prometheus, without promtool's dependencies.
//
//	promcheck rules FILE...   checks rule files exactly as `promtool check rules` does: rulefmt.ParseFile
//	                          (YAML, unknown fields, names, durations, every expression through the PromQL
//	                          parser, every label and annotation template), every error reported; then the
//	                          duplicate-rule lint (a warning, as in promtool). Exit 1 when a file has errors.
//	promcheck metrics         reads a JSON array of PromQL expressions on stdin and prints a JSON array of
//	                          {"expr", "metrics", "selectors", "error"}: the metric names each expression's
//	                          vector selectors select (sorted, unique), and each selector's metric with its
//	                          other label matchers ({"label", "op", "value"}). Exit 1 when an expression does
//	                          not parse.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// promtool's settings: UTF-8 names, no optional parser features, unknown fields refused.
var promql = parser.NewParser(parser.Options{})

const nameValidation = model.UTF8Validation

func main() {
	//nolint:staticcheck // promtool sets the legacy global the same way.
	model.NameValidationScheme = model.UTF8Validation
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "rules":
		if len(os.Args) < 3 {
			usage()
		}
		os.Exit(checkRules(os.Args[2:]))
	case "metrics":
		os.Exit(metrics(os.Stdin, os.Stdout))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: promcheck rules FILE... | promcheck metrics < expressions.json")
	os.Exit(2)
}

func checkRules(files []string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	failed := false
	for _, f := range files {
		fmt.Println("Checking", f)
		rgs, errs := rulefmt.ParseFile(f, false, nameValidation, promql, logger)
		if len(errs) > 0 {
			failed = true
			fmt.Fprintln(os.Stderr, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, e.Error())
			}
			continue
		}
		n := 0
		for _, g := range rgs.Groups {
			n += len(g.Rules)
		}
		for _, d := range duplicates(rgs.Groups) {
			fmt.Fprintf(os.Stderr, "  WARNING: duplicate rule %s %s\n", d.name, d.labels)
		}
		fmt.Printf("  SUCCESS: %d rules found\n", n)
	}
	if failed {
		return 1
	}
	return 0
}

type ruleKey struct {
	name   string
	labels labels.Labels
}

// duplicates is promtool's duplicate-rules lint: the same alert or record name with the same labels (group
// labels overridden by the rule's, as the rule manager merges them).
func duplicates(groups []rulefmt.RuleGroup) []ruleKey {
	seen := map[string]bool{}
	var dups []ruleKey
	for _, g := range groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			merged := map[string]string{}
			for k, v := range g.Labels {
				merged[k] = v
			}
			for k, v := range r.Labels {
				merged[k] = v
			}
			key := ruleKey{name, labels.FromMap(merged)}
			id := name + key.labels.String()
			if seen[id] {
				dups = append(dups, key)
			}
			seen[id] = true
		}
	}
	return dups
}

type selected struct {
	Expr      string     `json:"expr"`
	Metrics   []string   `json:"metrics"`
	Selectors []selector `json:"selectors"`
	Error     string     `json:"error,omitempty"`
}

// selector is one vector selector: the metric it names and its other label matchers.
type selector struct {
	Metric   string    `json:"metric"`
	Matchers []matcher `json:"matchers"`
}

type matcher struct {
	Label string `json:"label"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

func metrics(in io.Reader, out io.Writer) int {
	var exprs []string
	if err := json.NewDecoder(in).Decode(&exprs); err != nil {
		fmt.Fprintln(os.Stderr, "stdin: a JSON array of strings:", err)
		return 2
	}
	status := 0
	results := make([]selected, 0, len(exprs))
	for _, e := range exprs {
		names, selectors, err := metricNames(e)
		if names == nil {
			names = []string{}
		}
		r := selected{Expr: e, Metrics: names, Selectors: selectors}
		if err != nil {
			r.Error = err.Error()
			status = 1
		}
		results = append(results, r)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return status
}

// metricNames walks the expression for vector selectors (those inside range selectors and subqueries too) and
// returns the metric names they select: the name written before the braces, or an equality matcher on
// __name__; and each selector with its other matchers. A selector that names no single metric (a regex on
// __name__) is an error: its metrics cannot be checked.
func metricNames(expr string) ([]string, []selector, error) {
	ast, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, []selector{}, err
	}
	set := map[string]bool{}
	selectors := []selector{}
	var errs []error
	parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		matchers := []matcher{}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				if m.Type == labels.MatchEqual {
					name = m.Value
				}
				continue
			}
			matchers = append(matchers, matcher{m.Name, m.Type.String(), m.Value})
		}
		if name == "" {
			errs = append(errs, fmt.Errorf("selector %s names no single metric", vs))
			return nil
		}
		set[name] = true
		selectors = append(selectors, selector{name, matchers})
		return nil
	})
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return names, selectors, errors.New(strings.Join(msgs, "; "))
	}
	return names, selectors, nil
}
