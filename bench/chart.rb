# frozen_string_literal: true

require "fileutils"

# Horizontal bar charts as SVG, drawn from a benchmark's own numbers (docs/charts/*.svg),
# so every headline number in docs/benchmarks.md has a picture made by the run that
# measured it. No dependency: the SVG is written by hand.
module BenchChart
  BAR = 22
  GAP = 8
  LABEL_WIDTH = 260
  PLOT_WIDTH = 420
  COLORS = { "Lunar" => "#3b5bdb", "Puma" => "#e8590c", "Thin" => "#2b8a3e" }.freeze

  module_function

  # `rows`: [[label, value], …]; `unit`: shown after each value. Returns the path written.
  def bars(name, title:, rows:, unit:, dir: File.expand_path("../docs/charts", __dir__))
    FileUtils.mkdir_p(dir)
    top = rows.map(&:last).max.to_f
    top = 1.0 unless top.positive?
    height = 40 + (rows.size * (BAR + GAP))
    body = rows.each_with_index.map { |(label, value), i| bar(label, value, top, unit, 34 + (i * (BAR + GAP))) }
    svg = <<~SVG
      <svg xmlns="http://www.w3.org/2000/svg" width="#{LABEL_WIDTH + PLOT_WIDTH + 110}" height="#{height}" font-family="sans-serif" font-size="13">
      <text x="8" y="20" font-weight="bold">#{escape(title)}</text>
      #{body.join("\n")}
      </svg>
    SVG
    File.join(dir, "#{name}.svg").tap { |path| File.write(path, svg) }
  end

  def bar(label, value, top, unit, top_y)
    width = (PLOT_WIDTH * value / top).round(1)
    color = COLORS.find { |server, _| label.start_with?(server) }&.last || "#868e96"
    %(<text x="8" y="#{top_y + 15}">#{escape(label)}</text>) +
      %(<rect x="#{LABEL_WIDTH}" y="#{top_y}" width="#{[width, 1].max}" height="#{BAR}" fill="#{color}"/>) +
      %(<text x="#{LABEL_WIDTH + [width, 1].max + 6}" y="#{top_y + 15}">#{escape(format_value(value))} #{escape(unit)}</text>)
  end

  def format_value(value) = value.is_a?(Float) ? format("%.1f", value) : value.to_s
  def escape(text) = text.to_s.gsub("&", "&amp;").gsub("<", "&lt;").gsub(">", "&gt;")
end
