// Command render is the reference side of imrelay-gotmpl's corpus test: it
// renders a template file over a JSON data file with Go's own text/template,
// the way prometheus-webhook-dingtalk (mode "pwd") or PrometheusAlert (mode
// "pa") would. Standard library only, so CI builds it without downloads.
//
// Usage: render pwd|pa TEMPLATE_FILE DATA_FILE [TEMPLATE_NAME]
//
// The helper functions below re-implement the behaviour of the originals
// (Alertmanager's template funcs, PWD's, a subset of sprig, PA's helpers);
// the Rust engine must agree with them byte for byte.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// ---- Alertmanager's template data, as PWD declares it ----

type Pair struct{ Name, Value string }

type Pairs []Pair

func (ps Pairs) Names() []string {
	ns := make([]string, 0, len(ps))
	for _, p := range ps {
		ns = append(ns, p.Name)
	}
	return ns
}

func (ps Pairs) Values() []string {
	vs := make([]string, 0, len(ps))
	for _, p := range ps {
		vs = append(vs, p.Value)
	}
	return vs
}

type KV map[string]string

// SortedPairs sorts by name, except that "alertname" always comes first.
func (kv KV) SortedPairs() Pairs {
	keys := make([]string, 0, len(kv))
	hasName := false
	for k := range kv {
		if k == "alertname" {
			hasName = true
		} else {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if hasName {
		keys = append([]string{"alertname"}, keys...)
	}
	pairs := make(Pairs, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, Pair{k, kv[k]})
	}
	return pairs
}

func (kv KV) Remove(keys []string) KV {
	drop := map[string]bool{}
	for _, k := range keys {
		drop[k] = true
	}
	res := KV{}
	for k, v := range kv {
		if !drop[k] {
			res[k] = v
		}
	}
	return res
}

func (kv KV) Names() []string  { return kv.SortedPairs().Names() }
func (kv KV) Values() []string { return kv.SortedPairs().Values() }

type Alert struct {
	Status       string    `json:"status"`
	Labels       KV        `json:"labels"`
	Annotations  KV        `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

type Alerts []Alert

func (as Alerts) filter(status string) []Alert {
	res := []Alert{}
	for _, a := range as {
		if a.Status == status {
			res = append(res, a)
		}
	}
	return res
}

func (as Alerts) Firing() []Alert   { return as.filter("firing") }
func (as Alerts) Resolved() []Alert { return as.filter("resolved") }

type Data struct {
	Receiver          string `json:"receiver"`
	Status            string `json:"status"`
	Alerts            Alerts `json:"alerts"`
	GroupLabels       KV     `json:"groupLabels"`
	CommonLabels      KV     `json:"commonLabels"`
	CommonAnnotations KV     `json:"commonAnnotations"`
	ExternalURL       string `json:"externalURL"`
}

// ---- functions: Alertmanager's defaults, PWD's own, a sprig subset ----

func markdown(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '_' || c == '*' || c == '`' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// empty follows sprig's notion of an empty value (for "default").
func empty(v interface{}) bool {
	r := reflect.ValueOf(v)
	if !r.IsValid() {
		return true
	}
	switch r.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Struct:
		return false
	default:
		return r.IsNil()
	}
}

func strslice(v interface{}) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []interface{}:
		out := []string{}
		for _, s := range v {
			if s != nil {
				out = append(out, fmt.Sprint(s))
			}
		}
		return out
	case nil:
		return []string{}
	default:
		return []string{fmt.Sprint(v)}
	}
}

func pwdFuncs() template.FuncMap {
	return template.FuncMap{
		// Alertmanager's template.DefaultFuncs.
		"toUpper":   strings.ToUpper,
		"toLower":   strings.ToLower,
		"title":     strings.Title,
		"trimSpace": strings.TrimSpace,
		"join":      func(sep string, v interface{}) string { return strings.Join(strslice(v), sep) },
		"match":     regexp.MatchString,
		"safeHtml":  func(text string) htmltemplate.HTML { return htmltemplate.HTML(text) },
		"reReplaceAll": func(pattern, repl, text string) string {
			return regexp.MustCompile(pattern).ReplaceAllString(text, repl)
		},
		"stringSlice": func(s ...string) []string { return s },
		"urlUnescape": url.QueryUnescape,
		"tz": func(name string, t time.Time) (time.Time, error) {
			loc, err := time.LoadLocation(name)
			if err != nil {
				return time.Time{}, err
			}
			return t.In(loc), nil
		},
		// PWD's own.
		"markdown": markdown,
		// sprig (PWD adds sprig.TxtFuncMap last, so its "date" wins).
		"upper":      strings.ToUpper,
		"lower":      strings.ToLower,
		"trim":       strings.TrimSpace,
		"trimPrefix": func(a, b string) string { return strings.TrimPrefix(b, a) },
		"trimSuffix": func(a, b string) string { return strings.TrimSuffix(b, a) },
		"contains":   func(substr, str string) bool { return strings.Contains(str, substr) },
		"hasPrefix":  func(p, s string) bool { return strings.HasPrefix(s, p) },
		"hasSuffix":  func(p, s string) bool { return strings.HasSuffix(s, p) },
		"replace":    func(old, new, src string) string { return strings.Replace(src, old, new, -1) },
		"default": func(d interface{}, given ...interface{}) interface{} {
			if len(given) == 0 || empty(given[0]) {
				return d
			}
			return given[0]
		},
		"date": func(layout string, date interface{}) string {
			var t time.Time
			switch d := date.(type) {
			case time.Time:
				t = d
			case int64:
				t = time.Unix(d, 0)
			case int:
				t = time.Unix(int64(d), 0)
			default:
				t = time.Now()
			}
			return t.In(time.Local).Format(layout)
		},
	}
}

// ---- PrometheusAlert's helpers ----

func paGetTime(timeStr interface{}, timeFormat ...string) string {
	layout := "2006-01-02T15:04:05"
	if len(timeFormat) > 0 {
		layout = timeFormat[0]
	}
	switch v := timeStr.(type) {
	case string:
		secs, _ := strconv.ParseInt(v, 10, 64)
		if len(v) == 13 {
			secs /= 1000
		}
		return time.Unix(secs, 0).Format(layout)
	case float64:
		return time.Unix(int64(v), 0).Format(layout)
	}
	return ""
}

func paGetTimeDuration(start, end string) string {
	if start == "" || end == "" {
		return "N/A"
	}
	s, err := time.Parse("2006-01-02 15:04:05", start[0:10]+" "+start[11:19])
	if err != nil {
		return "N/A"
	}
	e, err := time.Parse("2006-01-02 15:04:05", end[0:10]+" "+end[11:19])
	if err != nil {
		return "N/A"
	}
	t := int64(e.Sub(s).Seconds())
	if t >= 86400 {
		return fmt.Sprintf("%dd%dh", t/86400, (t%86400)/3600)
	}
	hours, minutes := t/3600, (t%3600)/60
	if hours > 0 {
		return fmt.Sprintf("%dh%dm", hours, minutes)
	}
	if minutes == 0 {
		return fmt.Sprintf("%ds", t%60)
	}
	return fmt.Sprintf("%dm%ds", minutes, t%60)
}

func paGetCSTtime(date string) string {
	cst := time.FixedZone("CST", 8*3600)
	if date == "" {
		return time.Now().In(cst).Format("2006-01-02 15:04:05")
	}
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		t, err = time.ParseInLocation("2006-01-02 15:04:05", date, time.UTC)
		if err != nil {
			return ""
		}
	}
	return t.In(cst).Format("2006-01-02 15:04:05")
}

func paTimeFormat(timestr, format string) string {
	t, err := time.Parse("2006-01-02T15:04:05.999999999Z", timestr)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04:05.999999999+08:00", timestr)
	}
	if err != nil {
		return err.Error()
	}
	return t.Format(format)
}

func paFuncs() template.FuncMap {
	return template.FuncMap{
		"GetTimeDuration": paGetTimeDuration,
		"GetCSTtime":      paGetCSTtime,
		"TimeFormat":      paTimeFormat,
		"GetTime":         paGetTime,
		"toUpper":         strings.ToUpper,
		"toLower":         strings.ToLower,
		"title":           strings.Title,
		"join":            func(sep string, s []string) string { return strings.Join(s, sep) },
		"match":           regexp.MatchString,
		"safeHtml":        func(text string) htmltemplate.HTML { return htmltemplate.HTML(text) },
		"reReplaceAll": func(pattern, repl, text string) string {
			return regexp.MustCompile(pattern).ReplaceAllString(text, repl)
		},
		"stringSlice": func(s ...string) []string { return s },
		"SplitString": func(s string, start, stop int) string {
			if stop < 0 {
				return s[start : len(s)+stop]
			}
			return s[start:stop]
		},
	}
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: render pwd|pa TEMPLATE_FILE DATA_FILE [TEMPLATE_NAME]")
		os.Exit(2)
	}
	mode, tmplPath, dataPath := os.Args[1], os.Args[2], os.Args[3]
	src, err := os.ReadFile(tmplPath)
	check(err)
	raw, err := os.ReadFile(dataPath)
	check(err)

	var tmpl *template.Template
	var data interface{}
	switch mode {
	case "pwd":
		tmpl = template.New("root").Option("missingkey=zero").Funcs(pwdFuncs())
		var d Data
		check(json.Unmarshal(raw, &d))
		data = &d
	case "pa":
		tmpl = template.New("root").Funcs(paFuncs())
		check(json.Unmarshal(raw, &data))
	default:
		check(fmt.Errorf("unknown mode %q", mode))
	}
	tmpl, err = tmpl.Parse(string(src))
	check(err)
	var out bytes.Buffer
	if len(os.Args) > 4 {
		err = tmpl.ExecuteTemplate(&out, os.Args[4], data)
	} else {
		err = tmpl.Execute(&out, data)
	}
	check(err)
	os.Stdout.Write(out.Bytes())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}
