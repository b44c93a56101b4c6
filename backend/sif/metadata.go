package sif

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// InspectMetadataName is the name of the JSON descriptor `apptainer inspect` reads its
// answers from (labels, environment, runscript, definition) without starting a container.
const InspectMetadataName = "inspect-metadata.json"

// OCIConfigName is the name of the JSON descriptor holding the image's config.
const OCIConfigName = "oci-config.json"

// InspectMetadata is the inspect-metadata.json descriptor, in the shape Apptainer writes
// and `apptainer inspect` reads.
type InspectMetadata struct {
	Data struct {
		Attributes InspectAttributes `json:"attributes"`
	} `json:"data"`
	Type string `json:"type"` // "container"
}

// InspectAttributes are what `apptainer inspect` shows. Environment maps each env script
// it shows (the image's Env and the %environment script) to its text.
type InspectAttributes struct {
	Environment map[string]string `json:"environment,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Runscript   string            `json:"runscript,omitempty"`
	Test        string            `json:"test,omitempty"`
	Helpfile    string            `json:"helpfile,omitempty"`
	Deffile     string            `json:"deffile,omitempty"`
	Startscript string            `json:"startscript,omitempty"`
}

// Definition is the definition text stored in the SIF's deffile descriptor and in
// /.singularity.d/Singularity: what `apptainer build x.sif docker-daemon:SOURCE` records.
func Definition(source string) string {
	if source == "" {
		source = "image"
	}
	return "bootstrap: docker-daemon\nfrom: " + source + "\n\n"
}

// BuildDate formats t as Apptainer's org.label-schema.build-date label does:
// "Tuesday_2_December_2026_3:49:5_UTC".
func BuildDate(t time.Time) string {
	zone, _ := t.Zone()
	return fmt.Sprintf("%s_%d_%s_%d_%d:%d:%d_%s", t.Weekday(), t.Day(), t.Month(), t.Year(),
		t.Hour(), t.Minute(), t.Second(), zone)
}

// Labels are the image's labels with the ones Apptainer adds to every image it builds
// (schema version, build date and architecture, the definition's header); those win over
// the image's, as in Apptainer.
func Labels(image map[string]string, source, arch string, built time.Time) map[string]string {
	if source == "" {
		source = "image"
	}
	out := make(map[string]string, len(image)+6)
	for k, v := range image {
		out[k] = v
	}
	out["org.label-schema.schema-version"] = "1.0"
	out["org.label-schema.build-date"] = BuildDate(built)
	out["org.label-schema.build-arch"] = arch
	out["org.label-schema.usage.singularity.deffile.bootstrap"] = "docker-daemon"
	out["org.label-schema.usage.singularity.deffile.from"] = source
	return out
}

// image is what a build knows about the image: its config and where it came from.
type image struct {
	cfg    ImageConfig
	source string
	arch   string
	built  time.Time
}

func (im image) labels() map[string]string {
	return Labels(im.cfg.Labels, im.source, im.arch, im.built)
}

// labelsJSON is /.singularity.d/labels.json, indented as Apptainer writes it.
func (im image) labelsJSON() ([]byte, error) {
	return json.MarshalIndent(im.labels(), "", "\t")
}

// inspectMetadata is what `apptainer inspect --all` answers for the image, as Apptainer
// stores it at build time: each text with its trailing newlines removed.
func (im image) inspectMetadata() ([]byte, error) {
	var m InspectMetadata
	m.Type = "container"
	trim := func(s string) string { return strings.TrimRight(s, "\n") }
	m.Data.Attributes = InspectAttributes{
		Environment: map[string]string{
			"/.singularity.d/env/10-docker2singularity.sh": trim(EnvScript(im.cfg.Env)),
			"/.singularity.d/env/90-environment.sh":        trim(envScripts["90-environment.sh"]),
		},
		Labels:      im.labels(),
		Runscript:   trim(Runscript(im.cfg.Entrypoint, im.cfg.Cmd, im.cfg.WorkingDir)),
		Deffile:     trim(Definition(im.source)),
		Startscript: trim(startScript),
	}
	return json.Marshal(m)
}
