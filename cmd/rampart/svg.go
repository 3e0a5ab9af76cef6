package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one named line of a chart.
type series struct {
	Name   string
	Color  string
	Points []point
}

type point struct{ X, Y float64 }

// chart geometry, shared by every chart in the report.
const (
	chartW   = 720
	chartH   = 220
	marginL  = 56
	marginR  = 16
	marginT  = 28
	marginB  = 32
	plotW    = chartW - marginL - marginR
	plotH    = chartH - marginT - marginB
	yTicks   = 4
	xTickGap = 5 // seconds between x ticks, at least
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// lineChart draws series as an inline SVG line chart. yMin/yMax fix the y
// range; when yMax <= yMin the range is taken from the data.
func lineChart(title, unit string, ss []series, yMin, yMax float64) string {
	xMax := 0.0
	dataMax := math.Inf(-1)
	for _, s := range ss {
		for _, p := range s.Points {
			xMax = math.Max(xMax, p.X)
			dataMax = math.Max(dataMax, p.Y)
		}
	}
	if yMax <= yMin {
		yMin = 0
		yMax = niceCeil(dataMax)
	}
	if xMax <= 0 {
		xMax = 1
	}
	sx := func(x float64) float64 { return marginL + x/xMax*plotW }
	sy := func(y float64) float64 {
		y = math.Max(yMin, math.Min(yMax, y))
		return marginT + plotH - (y-yMin)/(yMax-yMin)*plotH
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="title">%s</text>`, marginL, html.EscapeString(title))
	// axes and grid
	for i := 0; i <= yTicks; i++ {
		v := yMin + (yMax-yMin)*float64(i)/yTicks
		y := sy(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, marginL, marginL+plotW, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s%s</text>`, marginL-4, y+4, fmtTick(v), unit)
	}
	step := math.Max(xTickGap, math.Ceil(xMax/10))
	for x := 0.0; x <= xMax+1e-9; x += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%gs</text>`, sx(x), marginT+plotH+16, x)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="frame"/>`, marginL, marginT, plotW, plotH)
	for i, s := range ss {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		if len(s.Points) > 0 {
			b.WriteString(`<polyline fill="none" stroke-width="1.6" stroke="` + color + `" points="`)
			for _, p := range s.Points {
				fmt.Fprintf(&b, "%.1f,%.1f ", sx(p.X), sy(p.Y))
			}
			b.WriteString(`"/>`)
		}
		// legend
		lx := marginL + 8 + i*150
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="3" fill="%s"/><text x="%d" y="%d" class="legend">%s</text>`,
			lx+240, 12, color, lx+254, 17, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// stateStrip draws one row per node and one cell per second, coloured by the
// node's breaker state in that second (0 closed, 1 half-open, 2 open).
func stateStrip(title string, nodes []string, states [][]int, seconds float64) string {
	rowH := 16
	h := marginT + len(nodes)*rowH + marginB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartW+60, h, chartW+60, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="title">%s</text>`, marginL+60, html.EscapeString(title))
	colors := [...]string{"#cfe8cf", "#ffd27f", "#e45756"}
	left := marginL + 60
	for i, n := range nodes {
		y := marginT + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="tick" text-anchor="end">%s</text>`, left-4, y+12, html.EscapeString(n))
		row := states[i]
		if len(row) == 0 {
			continue
		}
		cw := float64(plotW) / float64(len(row))
		for j, s := range row {
			if s < 0 || s >= len(colors) {
				s = 0
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.2f" height="%d" fill="%s"/>`, float64(left)+float64(j)*cw, y, cw+0.3, rowH-2, colors[s])
		}
	}
	y := marginT + len(nodes)*rowH + 16
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="tick">0s … %.0fs · green closed · amber half-open · red open</text>`, left, y, seconds)
	b.WriteString(`</svg>`)
	return b.String()
}

func niceCeil(v float64) float64 {
	if v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	switch {
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
