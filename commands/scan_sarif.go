package commands

import (
	"encoding/json"
	"fmt"
	"io"
)

const formatSARIF = "sarif"

// SARIF 2.1.0 (OASIS), the subset code-scanning services read: one run,
// one rule, a result per finding with its physical location.
type sarifLog struct {
	Version string     `json:"version"`
	Schema  string     `json:"$schema"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	FullDescription      sarifText         `json:"fullDescription"`
	Help                 sarifText         `json:"help"`
	DefaultConfiguration map[string]string `json:"defaultConfiguration"`
	Properties           map[string]any    `json:"properties"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

const sarifRuleID = "keyctl/leaked-api-key"

// sarifLevel ranks a finding: a key that works is an error; one that the
// store does not know, a warning; one that no longer works, a note.
func sarifLevel(status string) string {
	switch status {
	case scanLive, scanUnchecked:
		return "error"
	case scanUnknown:
		return "warning"
	default:
		return "note"
	}
}

func writeSARIF(w io.Writer, findings []*finding) error {
	results := make([]sarifResult, 0, len(findings))
	for _, fd := range findings {
		msg := fmt.Sprintf("Chatbot Platform API key %s (%s) found", fd.Hint, fd.Status)
		if fd.KeyID != nil {
			msg = fmt.Sprintf("Chatbot Platform API key %s (%s, %s) found", fd.Hint, *fd.KeyID, fd.Status)
		}
		if fd.Status == scanLive || fd.Status == scanUnchecked {
			msg += ": revoke it (keyctl revoke KEY_ID) and remove it from the file and its history"
		}
		props := map[string]any{"status": fd.Status, "environment": fd.Environment}
		if fd.KeyID != nil {
			props["key_id"] = *fd.KeyID
		}
		if fd.Commit != "" {
			props["commit"] = fd.Commit
		}
		results = append(results, sarifResult{
			RuleID:  sarifRuleID,
			Level:   sarifLevel(fd.Status),
			Message: sarifText{msg},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: fd.Path},
				Region:           sarifRegion{StartLine: fd.Line, StartColumn: fd.Column},
			}}},
			// The hint and the place: stable across runs, and no secret.
			PartialFingerprints: map[string]string{"keyctlHint/v1": fd.Hint + "@" + fd.Path},
			Properties:          props,
		})
	}
	log := sarifLog{
		Version: "2.1.0",
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:           "keyctl",
				InformationURI: "https://github.com/chatbotplatform/keyctl",
				Version:        buildInfo().Version,
				Rules: []sarifRule{{
					ID:                   sarifRuleID,
					Name:                 "LeakedAPIKey",
					ShortDescription:     sarifText{"A Chatbot Platform API key is in the code"},
					FullDescription:      sarifText{"A secret API key (sk_live_ or sk_test_ with a valid checksum) is written in a file or a commit, where anyone who can read it can use it."},
					Help:                 sarifText{"Revoke the key (keyctl revoke KEY_ID, or keyctl scan --revoke), give the client a new one through a secret store or environment variable, and remove the key from the file and its history."},
					DefaultConfiguration: map[string]string{"level": "error"},
					Properties:           map[string]any{"tags": []string{"security", "secret"}, "security-severity": "9.0"},
				}},
			}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
