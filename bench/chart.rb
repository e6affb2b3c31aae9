# frozen_string_literal: true

require "fileutils"

# Horizontal bar charts and cumulative distributions as SVG, drawn from a benchmark's own numbers (docs/charts/*.svg),
# so every headline number in docs/benchmarks.md has a picture made by the run that
# measured it. No dependency: the SVG is written by hand.
module BenchChart
  BAR = 22
  GAP = 8
  LABEL_WIDTH = 260
  PLOT_WIDTH = 420
  DIR = File.expand_path("../docs/charts", __dir__)
  COLORS = { "Lunar" => "#3b5bdb", "Puma" => "#e8590c", "Thin" => "#2b8a3e" }.freeze

  module_function

  # `rows`: [[label, value], …]; `unit`: shown after each value. Returns the path written.
  def bars(name, title:, rows:, unit:, dir: DIR)
    top = rows.map(&:last).max.to_f
    top = 1.0 unless top.positive?
    body = rows.each_with_index.map { |(label, value), i| bar(label, value, top, unit, 34 + (i * (BAR + GAP))) }
    write(File.join(dir, "#{name}.svg"), title, body, width: LABEL_WIDTH + PLOT_WIDTH + 110, height: 40 + (rows.size * (BAR + GAP)))
  end

  # An SVG document of `parts` under `title`, at `path`; returns the path.
  def write(path, title, parts, width:, height:)
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, <<~SVG)
      <svg xmlns="http://www.w3.org/2000/svg" width="#{width}" height="#{height}" font-family="sans-serif" font-size="13">
      <text x="8" y="20" font-weight="bold">#{escape(title)}</text>
      #{parts.join("\n")}
      </svg>
    SVG
    path
  end

  def bar(label, value, top, unit, top_y)
    width = (PLOT_WIDTH * value / top).round(1)
    color = COLORS.find { |server, _| label.start_with?(server) }&.last || "#868e96"
    %(<text x="8" y="#{top_y + 15}">#{escape(label)}</text>) +
      %(<rect x="#{LABEL_WIDTH}" y="#{top_y}" width="#{[width, 1].max}" height="#{BAR}" fill="#{color}"/>) +
      %(<text x="#{LABEL_WIDTH + [width, 1].max + 6}" y="#{top_y + 15}">#{escape(format_value(value))} #{escape(unit)}</text>)
  end

  SPARE_COLORS = ["#ae3ec9", "#868e96", "#495057", "#f59f00", "#1098ad"].freeze
  PLOT = { left: 70, top: 40, width: 560, height: 240 }.freeze

  # A cumulative distribution per series: x the value (`unit`), y the share of samples at or
  # below it. `series`: [[label, values], …] (any order). Returns the path written.
  def cdf(name, title:, series:, unit:, dir: DIR)
    sorted = series.map { |label, values| [label, values.sort] }.reject { |_, values| values.empty? }
    top = nice_ceiling(sorted.map { |_, values| values.last }.max.to_f)
    colors = line_colors(sorted.map(&:first))
    lines = sorted.each_with_index.map { |(label, values), i| cdf_line(label, values, top, i, colors[i]) }
    write(File.join(dir, "#{name}.svg"), title, [axes(top, unit), *lines],
          width: PLOT[:left] + PLOT[:width] + 250, height: PLOT[:top] + PLOT[:height] + 50)
  end

  # One series: its curve through 101 quantiles, and its legend entry.
  def cdf_line(label, values, top, index, color)
    points = (0..100).map do |pct|
      value = values[[((values.size * pct / 100.0).ceil - 1), 0].max]
      format("%.1f,%.1f", x_at(value, top), PLOT[:top] + (PLOT[:height] * (1 - (pct / 100.0))))
    end
    legend_y = PLOT[:top] + 10 + (index * 20)
    legend_x = PLOT[:left] + PLOT[:width] + 20
    dash = label.include?("floor") ? %( stroke-dasharray="6 4") : "" # the floors, dashed
    %(<polyline fill="none" stroke="#{color}" stroke-width="2"#{dash} points="#{points.join(' ')}"/>) +
      %(<rect x="#{legend_x}" y="#{legend_y - 9}" width="14" height="4" fill="#{color}"/>) +
      %(<text x="#{legend_x + 20}" y="#{legend_y}">#{escape(label)}</text>)
  end

  # A server's own color for the first series of each server (as in the bar charts), a
  # spare one for every other.
  def line_colors(labels)
    spare = SPARE_COLORS.cycle
    taken = []
    labels.map do |label|
      server, color = COLORS.find { |name, _| label.start_with?(name) }
      next spare.next if server.nil? || taken.include?(server)

      taken << server
      color
    end
  end

  # The frame, five ticks on each axis, and their labels.
  def axes(top, unit)
    bottom = PLOT[:top] + PLOT[:height]
    (0..4).map { |i| tick(i, top, bottom) }.join("\n") +
      %(<rect x="#{PLOT[:left]}" y="#{PLOT[:top]}" width="#{PLOT[:width]}" height="#{PLOT[:height]}" fill="none" stroke="#868e96"/>) +
      %(<text x="#{PLOT[:left] + (PLOT[:width] / 2)}" y="#{bottom + 38}" text-anchor="middle">#{escape(unit)}</text>)
  end

  # The i-th of five grid lines on each axis, with its label.
  def tick(index, top, bottom)
    x = PLOT[:left] + (PLOT[:width] * index / 4.0)
    y = bottom - (PLOT[:height] * index / 4.0)
    %(<line x1="#{x}" y1="#{PLOT[:top]}" x2="#{x}" y2="#{bottom}" stroke="#e9ecef"/>) +
      %(<text x="#{x}" y="#{bottom + 18}" text-anchor="middle">#{format_value((top * index / 4.0).round)}</text>) +
      %(<line x1="#{PLOT[:left]}" y1="#{y}" x2="#{PLOT[:left] + PLOT[:width]}" y2="#{y}" stroke="#e9ecef"/>) +
      %(<text x="#{PLOT[:left] - 8}" y="#{y + 4}" text-anchor="end">#{index * 25} %</text>)
  end

  def x_at(value, top) = PLOT[:left] + (PLOT[:width] * value / top)

  # A round number at or above `value` (so are its quarters, the tick labels).
  def nice_ceiling(value)
    return 1.0 unless value.positive?

    power = 10**Math.log10(value).floor
    [1, 1.2, 1.6, 2, 2.4, 3, 4, 6, 8, 10].map { |m| m * power }.find { |step| step >= value }.to_f
  end

  def format_value(value) = value.is_a?(Float) ? format("%.1f", value) : value.to_s
  def escape(text) = text.to_s.gsub("&", "&amp;").gsub("<", "&lt;").gsub(">", "&gt;")
end
