// Command vqlcheck: see build.sh. "vqlcheck FILES" loads artifacts the way
// Velociraptor does; "vqlcheck run FILE k=v..." evaluates one with recording stand-ins.
// vqlcheck: loads Velociraptor artifact YAML files the way Velociraptor's
// services/repository/repository.go LoadYaml/LoadProto do (sanitize_artifact_yaml,
// yaml.UnmarshalStrict into the artifact schema, ModeNameToMode, permission names,
// vfilter.MultiParse of precondition/export/queries, "all LET except the last").
package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	yaml "github.com/Velocidex/yaml/v2"
	"www.velocidex.com/golang/vfilter"
)

type Param struct {
	Name            string   `json:"name,omitempty"`
	Default         string   `json:"default,omitempty"`
	Description     string   `json:"description,omitempty"`
	Type            string   `json:"type,omitempty"`
	Choices         []string `json:"choices,omitempty"`
	FriendlyName    string   `json:"friendly_name,omitempty"`
	ValidatingRegex string   `json:"validating_regex,omitempty"`
	ArtifactType    string   `json:"artifact_type,omitempty"`
	Sources         bool     `json:"sources,omitempty"`
}

type Source struct {
	Name         string        `json:"name,omitempty"`
	Description  string        `json:"description,omitempty"`
	Precondition string        `json:"precondition,omitempty"`
	Query        string        `json:"query,omitempty"`
	Queries      []string      `json:"queries,omitempty"`
	Notebook     []interface{} `json:"notebook,omitempty"`
}

type Artifact struct {
	Name                string        `json:"name,omitempty"`
	Aliases             []string      `json:"aliases,omitempty"`
	Description         string        `json:"description,omitempty"`
	Author              string        `json:"author,omitempty"`
	Reference           []string      `json:"reference,omitempty"`
	References          []string      `json:"references,omitempty"`
	RequiredPermissions []string      `json:"required_permissions,omitempty"`
	ImpliedPermissions  []string      `json:"implied_permissions,omitempty"`
	Impersonate         string        `json:"impersonate,omitempty"`
	Resources           interface{}   `json:"resources,omitempty"`
	Tools               []interface{} `json:"tools,omitempty"`
	Precondition        string        `json:"precondition,omitempty"`
	Parameters          []Param       `json:"parameters,omitempty"`
	Type                string        `json:"type,omitempty"`
	Sources             []Source      `json:"sources,omitempty"`
	Imports             []string      `json:"imports,omitempty"`
	Export              string        `json:"export,omitempty"`
	Reports             []interface{} `json:"reports,omitempty"`
	ColumnTypes         []interface{} `json:"column_types,omitempty"`
}

var query_regexp = regexp.MustCompile(`(?im)^[\s-]*(precondition|query):\s*$`)
var queries_regexp = regexp.MustCompile(`(?im)(^ +- +)(SELECT|LET|//)`)

func sanitize(data string) string {
	data = strings.Replace(data, "\r\n", "\n", -1)
	result := query_regexp.ReplaceAllStringFunc(data, func(m string) string { return m + " |\n" })
	return queries_regexp.ReplaceAllStringFunc(result, func(m string) string {
		parts := queries_regexp.FindStringSubmatch(m)
		return parts[1] + "|\n" + strings.Repeat(" ", len(parts[1])) + parts[2]
	})
}

var perms = map[string]bool{}

func init() {
	for _, p := range strings.Fields("ANY_QUERY PUBLISH READ_RESULTS LABEL_CLIENT COLLECT_CLIENT COLLECT_BASIC START_HUNT COLLECT_SERVER ARTIFACT_WRITER SERVER_ARTIFACT_WRITER EXECVE NOTEBOOK_EDITOR SERVER_ADMIN ORG_ADMIN IMPERSONATION FILESYSTEM_READ FILESYSTEM_WRITE NETWORK MACHINE_STATE PREPARE_RESULTS DELETE_RESULTS DATASTORE_ACCESS") {
		perms[p] = true
	}
}

func check(data string) error {
	a := &Artifact{}
	if err := yaml.UnmarshalStrict([]byte(sanitize(data)), a); err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	switch strings.ToUpper(a.Type) {
	case "CLIENT", "", "CLIENT_EVENT", "SERVER", "SERVER_EVENT", "NOTEBOOK", "INTERNAL":
	default:
		return fmt.Errorf("Artifact type %v invalid.", a.Type)
	}
	for _, p := range a.RequiredPermissions {
		if !perms[p] {
			return fmt.Errorf("Invalid artifact permission: %v", p)
		}
	}
	for name, q := range map[string]string{"precondition": a.Precondition, "export": a.Export} {
		if q != "" {
			if _, err := vfilter.MultiParse(q); err != nil {
				return fmt.Errorf("While parsing artifact %s: %w", name, err)
			}
		}
	}
	for _, s := range a.Sources {
		q := s.Query
		if q == "" {
			for _, x := range s.Queries {
				q += "\n" + x
			}
		}
		if s.Precondition != "" {
			if _, err := vfilter.MultiParse(s.Precondition); err != nil {
				return fmt.Errorf("While parsing precondition: %w", err)
			}
		}
		if q == "" {
			continue
		}
		vqls, err := vfilter.MultiParse(q)
		if err != nil {
			return fmt.Errorf("While parsing source query %v: %w", s.Name, err)
		}
		for i, v := range vqls {
			if (i < len(vqls)-1) != (v.Let != "") {
				return fmt.Errorf("All Queries in a source must be LET queries, except for the final one.")
			}
		}
	}
	return nil
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "run" {
		params := map[string]string{}
		env := map[string]string{"os": "linux"}
		for _, kv := range os.Args[3:] {
			k, v, _ := strings.Cut(kv, "=")
			if k == "os" || k == "server_urls" {
				env[k] = v
			} else {
				params[k] = strings.ReplaceAll(v, "\\n", "\n")
			}
		}
		if err := runArtifact(os.Args[2], params, env); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		return
	}
	bad := 0
	for _, f := range os.Args[1:] {
		b, err := os.ReadFile(f)
		if err == nil {
			err = check(string(b))
		}
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", f, err)
			bad++
		} else {
			fmt.Printf("ok %s\n", f)
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
