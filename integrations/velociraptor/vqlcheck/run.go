package main

// run: evaluates an artifact's source queries in real vfilter, with the Velociraptor
// plugins and functions the Cordon artifacts use replaced by recording stand-ins.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/Velocidex/ordereddict"
	yaml "github.com/Velocidex/yaml/v2"
	"www.velocidex.com/golang/vfilter"
	"www.velocidex.com/golang/vfilter/types"
)

type Call struct {
	Plugin string                 `json:"plugin"`
	Args   map[string]interface{} `json:"args"`
}

var calls []Call

func record(ctx context.Context, scope types.Scope, name string, args *ordereddict.Dict) {
	m := map[string]interface{}{}
	for _, k := range args.Keys() {
		v, _ := args.Get(k)
		m[k] = materialize(ctx, scope, v)
	}
	calls = append(calls, Call{Plugin: name, Args: m})
}

func materialize(ctx context.Context, scope types.Scope, v interface{}) interface{} {
	switch t := v.(type) {
	case types.LazyExpr:
		return materialize(ctx, scope, t.Reduce(ctx))
	case types.StoredQuery:
		var out []interface{}
		for row := range t.Eval(ctx, scope) {
			out = append(out, materialize(ctx, scope, vfilter.RowToDict(ctx, scope, row)))
		}
		return out
	case *ordereddict.Dict:
		m := map[string]interface{}{}
		for _, k := range t.Keys() {
			x, _ := t.Get(k)
			m[k] = materialize(ctx, scope, x)
		}
		return m
	case []interface{}:
		out := []interface{}{}
		for _, x := range t {
			out = append(out, materialize(ctx, scope, x))
		}
		return out
	case types.Null, nil:
		return nil
	}
	return v
}

func str(args *ordereddict.Dict, k string) string {
	v, _ := args.Get(k)
	s, _ := materialize(context.Background(), vfilter.NewScope(), v).(string)
	return s
}

func runArtifact(path string, params map[string]string, env map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	a := &Artifact{}
	if err := yaml.UnmarshalStrict([]byte(sanitize(string(data))), a); err != nil {
		return err
	}
	vars := ordereddict.NewDict()
	var prelude []string
	for _, p := range a.Parameters {
		v := p.Default
		if x, ok := params[p.Name]; ok {
			v = x
		}
		vars.Set(p.Name, v)
		switch p.Type {
		case "bool":
			prelude = append(prelude, fmt.Sprintf("LET %v <= get(field='%v') = TRUE OR get(field='%v') =~ '^(Y|TRUE|YES|OK)$'", p.Name, p.Name, p.Name))
		case "csv":
			prelude = append(prelude, fmt.Sprintf("LET %v <= SELECT * FROM parse_csv(filename=%v, accessor='data')", p.Name, p.Name))
		}
	}
	urls := []interface{}{}
	for _, u := range strings.Split(env["server_urls"], ",") {
		if u != "" {
			urls = append(urls, u)
		}
	}
	vars.Set("config", ordereddict.NewDict().Set("server_urls", urls))
	scope := vfilter.NewScope().AppendVars(vars)
	scope.AppendPlugins(
		vfilter.GenericListPlugin{PluginName: "info", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) []types.Row {
			return []types.Row{ordereddict.NewDict().Set("OS", env["os"]).Set("Fqdn", "web1.example.org")}
		}},
		vfilter.GenericListPlugin{PluginName: "execve", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) []types.Row {
			record(ctx, scope, "execve", args)
			return []types.Row{ordereddict.NewDict().Set("Stdout", `{"ok":true}`).Set("Stderr", "").Set("ReturnCode", 0)}
		}},
		vfilter.GenericListPlugin{PluginName: "http_client", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) []types.Row {
			record(ctx, scope, "http_client", args)
			return []types.Row{ordereddict.NewDict().Set("Response", 200).Set("Content", `{"events":[],"rejected":[]}`)}
		}},
		vfilter.GenericListPlugin{PluginName: "parse_csv", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) []types.Row {
			r := csv.NewReader(strings.NewReader(str(args, "filename")))
			recs, _ := r.ReadAll()
			var rows []types.Row
			for i, rec := range recs {
				if i == 0 {
					continue
				}
				d := ordereddict.NewDict()
				for j, h := range recs[0] {
					if j < len(rec) {
						d.Set(h, rec[j])
					}
				}
				rows = append(rows, d)
			}
			return rows
		}},
		vfilter.GenericListPlugin{PluginName: "watch_monitoring", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) []types.Row {
			// Rows as Velociraptor's watch_monitoring emits them: the artifact's own
			// columns plus ClientId and _ts (flows/monitoring: rows are dicts).
			art := str(args, "artifact")
			return []types.Row{
				ordereddict.NewDict().Set("ClientId", "C.0123456789abcdef").Set("_ts", 1714557600).
					Set("Pid", 4242).Set("Name", "evil.exe").Set("CommandLine", "evil.exe --encrypt\n\"all\"").Set("SourceArtifact", art),
			}
		}},
	)
	scope.AppendFunctions(
		vfilter.GenericFunction{FunctionName: "parse_json", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			var v interface{}
			_ = json.Unmarshal([]byte(str(args, "data")), &v)
			return v
		}},
		vfilter.GenericFunction{FunctionName: "serialize", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			item, _ := args.Get("item")
			// vql/functions/encode.go _encode: "" and "json" are MarshalIndent.
			f := str(args, "format")
			if f != "" && f != "json" {
				return types.Null{}
			}
			b, _ := json.MarshalIndent(materialize(ctx, scope, item), "", " ")
			return string(b)
		}},
		vfilter.GenericFunction{FunctionName: "client_info", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			return ordereddict.NewDict().Set("client_id", str(args, "client_id")).Set("os_info",
				ordereddict.NewDict().Set("fqdn", "web1.example.org").Set("hostname", "web1"))
		}},
		// vql/parsers/regexparser.go _RegexReplace.Call: regexp.Compile("(?i)" + re).ReplaceAllString.
		vfilter.GenericFunction{FunctionName: "regex_replace", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			re, err := regexp.Compile("(?i)" + str(args, "re"))
			if err != nil {
				return types.Null{}
			}
			return re.ReplaceAllString(str(args, "source"), str(args, "replace"))
		}},
		// vql/functions/dict.go _ToDictFunc.Call: rows with _key/_value.
		vfilter.GenericFunction{FunctionName: "to_dict", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			item, _ := args.Get("item")
			result := ordereddict.NewDict()
			if sq, ok := item.(types.StoredQuery); ok {
				for row := range sq.Eval(ctx, scope) {
					k, _ := scope.Associative(row, "_key")
					ks, _ := k.(string)
					if ks == "" {
						continue
					}
					v, pres := scope.Associative(row, "_value")
					if !pres {
						v = types.Null{}
					}
					result.Set(ks, v)
				}
			}
			return result
		}},
		// vql/functions/functions.go _GetFunction.Call (Velociraptor's get: field or member).
		vfilter.GenericFunction{FunctionName: "get", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			var result types.Any = scope
			if it, ok := args.Get("item"); ok {
				result = materialize(ctx, scope, it)
			}
			def := types.Any(types.Null{})
			if d, ok := args.Get("default"); ok {
				def = materialize(ctx, scope, d)
			}
			if f, ok := args.Get("field"); ok {
				r, pres := scope.Associative(result, materialize(ctx, scope, f))
				if !pres {
					return def
				}
				return r
			}
			for _, m := range strings.Split(str(args, "member"), ".") {
				r, pres := scope.Associative(result, m)
				if !pres {
					return def
				}
				result = r
			}
			return result
		}},
		vfilter.GenericFunction{FunctionName: "now", Function: func(ctx context.Context, scope types.Scope, args *ordereddict.Dict) types.Any {
			return 1714557600
		}},
	)
	queries := a.Sources[0].Query
	vqls, err := vfilter.MultiParse(strings.Join(prelude, "\n") + "\n" + queries)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var rows []interface{}
	for _, v := range vqls {
		for row := range v.Eval(ctx, scope) {
			rows = append(rows, materialize(ctx, scope, vfilter.RowToDict(ctx, scope, row)))
		}
	}
	out, _ := json.MarshalIndent(map[string]interface{}{"calls": calls, "rows": rows}, "", "  ")
	fmt.Println(string(out))
	return nil
}
