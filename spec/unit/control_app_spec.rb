# frozen_string_literal: true

require "unit_helper"
require "lunar/process/control_app"

RSpec.describe Lunar::ControlApp do
  # What a runner answers, recorded.
  let(:target) do
    Class.new do
      attr_reader :done

      def stats = { backlog: 0, running: 2, requests_count: 7 }
      def gc_stats = { count: 1 }
      def thread_backtraces = [{ name: "main", backtrace: [] }]
      %i[phased_restart restart stop halt gc].each { |action| define_method(action) { (@done ||= []) << action } }
    end.new
  end

  def get(app, path, query = "token=t")
    app.call("PATH_INFO" => path, "QUERY_STRING" => query)
  end

  it "answers Puma's paths with the token, 403 without it, 404 for the rest" do
    app = described_class.new(target, token: "t")
    expect(JSON.parse(get(app, "/stats")[2].join)).to eq("backlog" => 0, "running" => 2, "requests_count" => 7)
    expect(get(app, "/stats", "")[0..2]).to eq([403, { "content-type" => "text/plain" }, ["Invalid auth token"]])
    expect(get(app, "/stats", "token=T")[0]).to eq(403)
    expect(get(app, "/refork")[0..2]).to eq([404, { "content-type" => "text/plain" }, ["Unsupported action"]])
    expect(get(app, "/metrics")[2].join).to include("lunar_requests_total 7\n")
  end

  it "acts on the action paths and says ok" do
    app = described_class.new(target, token: "t")
    %w[/phased-restart /restart /stop /halt /gc].each { |path| expect(get(app, path)[2]).to eq(['{"status":"ok"}']) }
    expect(target.done).to eq(%i[phased_restart restart stop halt gc])
  end

  it "needs no token only when told `none`, and never matches an empty one" do
    expect(get(described_class.new(target, token: "none"), "/stats", "")[0]).to eq(200)
    expect(get(described_class.new(target, token: ""), "/stats", "token=")[0]).to eq(403)
  end
end
