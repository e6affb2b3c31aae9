# frozen_string_literal: true

require "unit_helper"
require "lunar/process/configuration"
require "lunar/process/thin_config"

# A Thin deployment's config/thin.yml, as `thin config` writes it.
RSpec.describe Lunar::ThinConfig do
  # What `thin -C thin.yml -s 3 -p 4000 -e production --threaded --threadpool-size 10
  # --max-conns 2000 -t 60 config` writes, with `daemonize: true` taken out.
  let(:generated) do
    <<~YAML
      ---
      chdir: "/srv/app"
      environment: production
      address: 127.0.0.1
      port: 4000
      timeout: 60
      log: log/thin.log
      pid: tmp/pids/thin.pid
      max_conns: 2000
      max_persistent_conns: 100
      require: []
      wait: 30
      threadpool_size: 10
      servers: 3
      threaded: true
      rackup: config.ru
    YAML
  end

  def load_yaml(text)
    path = File.join(scratch_dir("lunar-thin"), "thin.yml")
    File.write(path, text)
    described_class.load(path)
  end

  it "reads what `thin config` writes" do
    config = Lunar::Configuration.new({}, file: load_yaml(generated), env: {})
    expect([config[:directory], config[:environment], config[:timeout], config[:pidfile], config[:max_conns], config[:max_persistent_conns]])
      .to eq(["/srv/app", "production", 60.0, "tmp/pids/thin.pid", 2000, 100])
    expect([config[:workers], config.mode, config[:eventmachine], config.threads]).to eq([3, :threaded, true, 10])
    expect(config.binds).to eq(%w[tcp://127.0.0.1:4000 tcp://127.0.0.1:4001 tcp://127.0.0.1:4002]) # Thin's 3 ports, each served by every worker
    expect([config[:redirect_stdout], config[:redirect_append]]).to eq(["log/thin.log", true])
  end

  it "numbers the sockets of a cluster on a Unix socket as Thin does" do
    config = Lunar::Configuration.new({}, file: load_yaml("socket: /tmp/thin.sock\nservers: 2\n"), env: {})
    expect(config.binds).to eq(%w[unix:///tmp/thin.0.sock unix:///tmp/thin.1.sock])
  end

  it "refuses daemonize: true, pointing at systemd, and keys it cannot honour" do
    expect { load_yaml("#{generated}daemonize: true\n") }.to raise_error(Lunar::DSL::Error, /daemonize.*systemd/)
    expect { load_yaml("user: www-data\n") }.to raise_error(Lunar::DSL::Error, /Thin's `user' is not supported by Lunar \(run Lunar as that user from systemd/)
    expect { load_yaml("port: http\n") }.to raise_error(Lunar::DSL::Error, /port: "http" is not a port number/)
    expect { load_yaml("colour: blue\n") }.to raise_error(Lunar::DSL::Error, /`colour'/)
  end

  it "evaluates ERB first, and takes keys written as symbols" do
    config = Lunar::Configuration.new({}, file: load_yaml(":port: <%= 3000 + 5 %>\n"), env: {})
    expect(config[:port]).to eq(3005)
  end
end
