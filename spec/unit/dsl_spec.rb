# frozen_string_literal: true

require "unit_helper"
require "lunar/process/configuration"
require "lunar/process/dsl"

# Config files in Puma's DSL: the ones `rails new` writes load unchanged, and anything Lunar
# cannot honour stops the boot with one line naming the file, the line and why.
RSpec.describe Lunar::DSL do
  def load_text(text) = load_config(text, "puma.rb")

  def config(dsl, env = {})
    Lunar::Configuration.new({}, file: dsl, env: env)
  end

  def with_env(env)
    saved = env.to_h { |k, _| [k, ENV.fetch(k, nil)] }
    env.each { |k, v| ENV[k] = v }
    yield
  ensure
    saved.each { |k, v| ENV[k] = v }
  end

  let(:rails61) do
    railties = Gem::Specification.find_by_name("railties")
    File.join(railties.gem_dir, "lib/rails/generators/rails/app/templates/config/puma.rb.tt")
  end
  let(:fixtures) { File.expand_path("../fixtures/puma", __dir__) }

  it "loads Rails 6.1's config/puma.rb (the template railties ships) unchanged" do
    dsl = with_env("RAILS_MAX_THREADS" => "7", "PORT" => "4567", "RAILS_ENV" => "development", "PIDFILE" => nil) { described_class.load(rails61) }
    settings = config(dsl)
    expect([settings.threads, settings[:port], settings[:pidfile], settings[:environment], settings[:worker_timeout]])
      .to eq([7, 4567, "tmp/pids/server.pid", "development", 3600.0])
    expect(settings.plugins).to eq([:tmp_restart])
  end

  it "loads Rails 7's, workers and preload in production" do
    dsl = with_env("RAILS_ENV" => "production", "WEB_CONCURRENCY" => "2", "PORT" => "4000") { described_class.load(File.join(fixtures, "rails7.rb")) }
    expect(config(dsl).then { |c| [c[:workers], c[:preload_app], c[:port], c.threads] }).to eq([2, true, 4000, 3])
  end

  it "loads Rails 8's with Puma 7's hook names" do
    dsl = with_env("WEB_CONCURRENCY" => "2") { described_class.load(File.join(fixtures, "rails8.rb")) }
    expect(dsl.hooks.keys).to contain_exactly(:before_worker_boot, :before_worker_shutdown)
    expect(config(dsl)[:workers]).to eq(2)
  end

  it "takes Puma's old and new hook names alike, and its other settings" do
    dsl, = load_text(<<~RUBY)
      on_worker_boot { 1 }
      before_worker_boot { 2 }
      on_restart { 3 }
      after_booted { 4 }
      persistent_timeout 70
      first_data_timeout 10
      worker_shutdown_timeout 12
      stdout_redirect "out.log", "err.log", true
      log_requests
      lowlevel_error_handler { |e| [500, {}, [e.message]] }
      activate_control_app "tcp://127.0.0.1:9293", auth_token: "secret"
      silence_single_worker_warning
      ssl_bind "0.0.0.0", 9443, cert: "c.pem", key: "k.pem", ca: "ca.pem", verify_mode: "force_peer"
    RUBY
    expect(dsl.hooks[:before_worker_boot].map(&:call)).to eq([1, 2])
    expect(dsl.hooks[:before_restart].size).to eq(1)
    expect(dsl.settings).to include(persistent_timeout: 70.0, first_data_timeout: 10.0, shutdown_timeout: 12.0, redirect_stdout: "out.log",
                                    redirect_stderr: "err.log", redirect_append: true, access_log: "-", control_url: "tcp://127.0.0.1:9293",
                                    control_token: "secret", bind: ["ssl://0.0.0.0:9443?cert=c.pem&key=k.pem&ca=ca.pem&verify_mode=force_peer"])
    expect(dsl.settings[:error_handler].call(RuntimeError.new("x"))).to eq([500, {}, ["x"]])
  end

  {
    "fork_worker" => /Puma's `fork_worker' is not supported by Lunar/,
    "plugin :statsd" => /Puma's `plugin :statsd' is not supported by Lunar/,
    "turbo_mode 3" => /unknown option `turbo_mode'/,
    "timeout 1e400" => /timeout: Infinity is not a number of seconds/,
    "threads 8, 2" => /threads: \[8, 2\] is not a thread count/,
    "port 70000" => /port: 70000 is not a port number/,
    "ssl_bind '0.0.0.0', 443, cert: 'c', key: 'k', verify_mode: 'peer'" => /verify_mode peer needs ca:/,
    "activate_control_app 'tcp://127.0.0.1:9293'" => /needs auth_token:/,
  }.each do |line, message|
    it "stops at `#{line}` with the file, the line and why" do
      expect { load_text("workers 2\n#{line}\n") }.to raise_error(described_class::Error) { |e|
        expect(e.message).to match(/\A\S+puma\.rb:2: /).and match(message)
      }
    end
  end
end
