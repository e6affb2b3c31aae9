# frozen_string_literal: true

require "spec_helper"

# The entry points other tools use: rackup -s lunar, Sinatra's set :server, rails server -u.
RSpec.describe "Rack handler entry points" do
  let(:listening) { %r{Lunar \S+ \(ruby .*\) threaded mode.*, listening on tcp://127\.0\.0\.1:(\d+)} }

  def rackup_cmd
    gem_name = RackVersion.major >= 3 ? "rackup" : "rack"
    [RbConfig.ruby, Gem.bin_path(gem_name, "rackup")]
  end

  def expect_serving(child, pattern = listening)
    port = Integer(child.wait_for(pattern)[1])
    yield Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/"))
  end

  it "runs under rackup -s lunar (evented, EventMachine loaded as Thin's handler does) and stops on INT" do
    child = spawn_child([*rackup_cmd, "-s", "lunar", "-o", "127.0.0.1", "-p", "0", "-E", "none", fixture("hello.ru")])
    expect_serving(child, %r{Lunar \S+ \(ruby .*\) evented mode.*, listening on tcp://127\.0\.0\.1:(\d+)}) do |r|
      expect(r.body).to start_with("hello from Lunar")
    end
    child.signal("INT")
    expect(child.exit_status.success?).to be(true)
  end

  it "runs a Sinatra app with set :server, 'lunar' and stops on TERM" do
    child = spawn_child([RbConfig.ruby, fixture("sinatra_app.rb")])
    expect_serving(child) { |r| expect(r.body).to match(RackVersion.major >= 3 ? /\Asinatra 4\./ : /\Asinatra 3\./) }
    child.signal("TERM")
    expect(child.exit_status.success?).to be(true)
  end

  it "runs Rails 6.1 with rails server -u lunar", rack: 2 do
    app = fixture("rails_app")
    child = spawn_child([RbConfig.ruby, "bin/rails", "server", "-u", "lunar", "-b", "127.0.0.1", "-p", "0"],
                        chdir: app, env: { "RAILS_ENV" => "production", "PIDFILE" => File.join(scratch_dir("lunar-rails"), "server.pid") })
    expect_serving(child) { |r| expect(r.body).to start_with("rails 6.1") }
    child.signal("INT")
    expect(child.exit_status.success?).to be(true)
  end
end

RSpec.describe "Rails 6.1 with the async protocol", rack: 2 do
  it "answers a controller action that captures async.callback and throws :async" do
    child = spawn_child(lunar_cmd("--evented", "-e", "production", "-b", "tcp://127.0.0.1:0",
                                  File.join(ProcessHelpers::ROOT, "examples/rails_async/config.ru")))
    port = Integer(child.wait_for(%r{evented mode.*listening on tcp://127\.0\.0\.1:(\d+)})[1])
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to start_with("Rails 6.1")
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/async"))).to start_with("answered later by Rails 6.1")
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end
end
