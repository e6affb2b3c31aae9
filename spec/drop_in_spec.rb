# frozen_string_literal: true

require "spec_helper"
require "json"

# What a Puma or Thin deployment meets first: its own config files, its environment
# variables, its signals and logs, its error reporter, unchanged.
RSpec.describe "dropped in where Puma or Thin ran" do
  let(:dir) { scratch_dir("lunar-drop-in") }
  let(:single_boot) { %r{threaded mode, (\d+) threads, pid (\d+),.* listening on tcp://[\d.]+:(\d+)} }
  let(:cluster_boot) { %r{cluster of (\d+) workers, .* listening on tcp://[\d.]+:(\d+)} }

  def in_dir(path, text) = write_file(dir, path, text)

  # A port free a moment ago: Puma's config files take theirs from PORT, not from -b.
  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1].tap { server.close }
  end

  def app_dir(app = "hello.ru")
    FileUtils.cp(fixture(app), File.join(dir, "config.ru"))
    dir
  end

  def body(port, path = "/")
    Net::HTTP.get_response(URI("http://127.0.0.1:#{port}#{path}"))
  end

  describe "the config/puma.rb that `rails new` writes" do
    it "is read only when named, and says so when it is passed over" do
      in_dir("config/puma.rb", "threads 2, 2\n")
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0"), chdir: app_dir)
      expect(child.wait_for(single_boot)[1]).to eq("5") # Lunar's default, not the file's 2
      expect(child.lines.join).to include("lunar: config/puma.rb is not read unless named (-C config/puma.rb")
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)

      child = spawn_child(lunar_cmd("--log-format", "json", "-b", "tcp://127.0.0.1:0"), chdir: dir) # in the format asked for
      notice = JSON.parse(child.wait_for(%r{config/puma.rb is not read}).string)
      expect(notice).to include("level" => "warn", "message" => start_with("config/puma.rb is not read unless named"))
      child.wait_for(/"message":"Lunar .*listening on/) # booted: TERM is handled now
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)

      in_dir("config/lunar.rb", "threads 3, 3\n") # the file Lunar reads by default: no word of the other
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0"), chdir: dir)
      expect(child.wait_for(single_boot)[1]).to eq("3")
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)
      expect(child.rest).not_to include("puma.rb")
    end

    it "runs Rails 6.1's: threads from RAILS_MAX_THREADS, port from PORT, the pid file, and `rails restart`" do
      port = free_port
      pidfile = File.join(dir, "server.pid")
      child = spawn_child(lunar_cmd("-C", fixture("puma/rails61.rb")), chdir: app_dir,
                                                                       env: { "PORT" => port.to_s, "RAILS_MAX_THREADS" => "3", "PIDFILE" => pidfile })
      threads, pid, bound = child.wait_for(single_boot).captures.map(&:to_i)
      expect([threads, bound]).to eq([3, port])
      expect(File.read(pidfile).to_i).to eq(pid)
      expect(body(port).body).to start_with("hello from Lunar")

      in_dir("tmp/restart.txt", "") # what `rails restart` does
      child.wait_for(/Lunar restarting$/)
      restarted = child.wait_for(single_boot).captures.map(&:to_i)
      expect(restarted).to eq([3, pid, port]) # re-executed in place, on the same socket
      expect(body(port).code).to eq("200")
    end

    it "runs Rails 7's in production: WEB_CONCURRENCY workers, preloaded" do
      port = free_port
      loads = File.join(dir, "loads.log")
      child = spawn_child(lunar_cmd("-C", fixture("puma/rails7.rb")), chdir: app_dir("pid.ru"),
                                                                      env: { "PORT" => port.to_s, "RAILS_ENV" => "production",
                                                                             "WEB_CONCURRENCY" => "2", "LOAD_LOG" => loads })
      expect(child.wait_for(cluster_boot).captures.map(&:to_i)).to eq([2, port])
      master = child.lines.join[/master pid (\d+)/, 1]
      expect(File.read(loads)).to eq("loaded #{master}\n") # once, before forking
      expect(body(port).code).to eq("200")
    end

    it "runs Rails 8's with Puma 7's hook names (before_worker_boot, before_worker_shutdown)" do
      port = free_port
      hooks = File.join(dir, "hooks.log")
      child = spawn_child(lunar_cmd("-C", fixture("puma/rails8.rb")), chdir: app_dir,
                                                                      env: { "PORT" => port.to_s, "WEB_CONCURRENCY" => "2", "HOOK_LOG" => hooks })
      child.wait_for(cluster_boot)
      expect(File.readlines(hooks, chomp: true)).to contain_exactly("boot 0", "boot 1")
      child.signal("TERM")
      expect(child.exit_status.exitstatus).to eq(0)
      expect(File.readlines(hooks, chomp: true)).to contain_exactly("boot 0", "boot 1", "shutdown 0", "shutdown 1")
    end
  end

  it "reads config/lunar.rb under rackup -s lunar: `workers 2` runs a cluster" do
    in_dir("config/lunar.rb", "workers 2\n")
    rackup = RackVersion.major >= 3 ? %w[rackup rackup] : %w[rack rackup]
    child = spawn_child([RbConfig.ruby, Gem.bin_path(*rackup), "-s", "lunar", "-o", "127.0.0.1", "-p", "0", "-E", "none"], chdir: app_dir)
    port = child.wait_for(cluster_boot)[2].to_i
    expect(child.lines.grep(/worker \d booted/).size).to eq(2)
    expect(body(port).body).to start_with("hello from Lunar")
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end

  it "reads LUNAR_CONFIG under rails server -u lunar", rack: 2 do
    config = in_dir("lunar.rb", "workers 2\n")
    child = spawn_child([RbConfig.ruby, "bin/rails", "server", "-u", "lunar", "-b", "127.0.0.1", "-p", "0"],
                        chdir: fixture("rails_app"),
                        env: { "RAILS_ENV" => "production", "LUNAR_CONFIG" => config, "PIDFILE" => File.join(dir, "rails.pid") })
    port = child.wait_for(cluster_boot)[2].to_i
    expect(body(port).body).to start_with("rails 6.1")
  end

  # Rails' way to stream (server-sent events, ActionController::Live): the action writes
  # from its own thread into a queue that the response body's `each` waits on.
  it "streams an ActionController::Live response as it is written, and tells the action when its client leaves", rack: 2 do
    child = spawn_child([RbConfig.ruby, "bin/rails", "server", "-u", "lunar", "-b", "127.0.0.1", "-p", "0"],
                        chdir: fixture("rails_app"), env: { "RAILS_ENV" => "production", "PIDFILE" => File.join(dir, "rails.pid") })
    port = child.wait_for(single_boot)[3].to_i
    stays, leaves = %w[stays leaves].map { |name| File.join(dir, name).tap { |d| Dir.mkdir(d) } }
    request = ->(events) { "GET /live?dir=#{URI.encode_www_form_component(events)} HTTP/1.1\r\nHost: h\r\n\r\n" }

    reader = connect(port)
    reader.write(request[stays])
    # The first event arrives while the action still waits to write the second.
    expect(read_until(reader, /data: first/)).to start_with("HTTP/1.1 200").and include("text/event-stream", "data: first")
    File.write(File.join(stays, "go"), "")
    expect(read_until(reader, /data: second/)).to include("data: second")

    quitter = connect(port)
    quitter.write(request[leaves])
    read_until(quitter, /data: first/)
    quitter.close
    File.write(File.join(leaves, "go"), "") # its next write finds the client gone
    eventually { File.exist?(File.join(leaves, "left")) }
    expect(File.exist?(File.join(stays, "left"))).to be(false)
  ensure
    reader&.close
  end

  # Some gem loaded EventMachine, so the default is Thin's evented mode: the user is told
  # what that means for a Rails app (one request at a time), unless they asked for it.
  it "warns that a Rails app runs on the reactor when only a loaded EventMachine chose it", rack: 2 do
    rails = [RbConfig.ruby, "bin/rails", "server", "-u", "lunar", "-b", "127.0.0.1", "-p", "0"]
    env = { "RAILS_ENV" => "production", "LUNAR_SPEC_GEM_LOADS_EM" => "1", "PIDFILE" => File.join(dir, "rails.pid") }
    evented_boot = %r{evented mode \(EventMachine .*listening on tcp://[\d.]+:(\d+)}
    warning = /this Rails app runs on the reactor thread, one request at a time/

    child = spawn_child(rails, chdir: fixture("rails_app"), env: env)
    port = child.wait_for(evented_boot)[1].to_i
    expect(body(port).body).to start_with("rails 6.1")
    expect(child.lines.grep(warning).size).to eq(1)
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)

    # A cluster whose workers load the app: said by the first worker, once.
    cluster = spawn_child(lunar_cmd("-w", "2", "-b", "tcp://127.0.0.1:0", "config.ru"), chdir: fixture("rails_app"), env: env)
    port = cluster.wait_for(cluster_boot)[2].to_i
    expect(body(port).body).to start_with("rails 6.1")
    expect(cluster.lines.grep(warning).size).to eq(1)
    cluster.signal("TERM")
    expect(cluster.exit_status.exitstatus).to eq(0)

    asked = spawn_child(rails, chdir: fixture("rails_app"), env: env.merge("LUNAR_CONFIG" => in_dir("lunar.rb", "evented\n")))
    asked.wait_for(evented_boot)
    expect(asked.lines.grep(warning)).to be_empty
  end

  # Rails reads raw_post as read(content_length): a chunked upload without CONTENT_LENGTH
  # reached the controller as empty params. Puma gives the unchunked size.
  it "gives Rails a chunked JSON upload's params, its CONTENT_LENGTH the unchunked size", rack: 2 do
    child = spawn_child([RbConfig.ruby, "bin/rails", "server", "-u", "lunar", "-b", "127.0.0.1", "-p", "0"],
                        chdir: fixture("rails_app"), env: { "RAILS_ENV" => "production", "PIDFILE" => File.join(dir, "rails.pid") })
    port = child.wait_for(single_boot)[3].to_i
    json = '{"a":1}'
    text = raw(port, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n" \
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\n#{json[0, 3]}\r\n" \
                     "4\r\n#{json[3..]}\r\n0\r\n\r\n")
    expect(text).to start_with("HTTP/1.1 200").and end_with("\r\n\r\na=1 raw=#{json}")
  end

  describe "Thin's YAML config (thin config -C)" do
    it "serves with its keys: chdir, address, port, pid, timeout, max_conns, threaded" do
      pidfile = File.join(dir, "thin.pid")
      config = in_dir("thin.yml", <<~YAML)
        ---
        chdir: #{app_dir}
        environment: production
        address: 127.0.0.1
        port: 0
        timeout: 20
        max_conns: 321
        max_persistent_conns: 64
        pid: #{pidfile}
        servers: 1
        threaded: true
        threadpool_size: 4
        daemonize: false
      YAML
      child = spawn_child(lunar_cmd("-C", config))
      threads, pid, port = child.wait_for(single_boot).captures.map(&:to_i)
      expect(threads).to eq(4)
      expect(child.lines.join).to include("up to 321 connections")
      expect(File.read(pidfile).to_i).to eq(pid)
      expect(body(port).body).to start_with("hello from Lunar")
    end

    it "refuses daemonize: true in one line that points at systemd, exit 2" do
      config = in_dir("thin.yml", "port: 0\ndaemonize: true\n")
      child = spawn_child(lunar_cmd("-C", config, fixture("hello.ru")))
      expect(child.exit_status.exitstatus).to eq(2)
      expect(child.rest.lines.size).to eq(1)
      expect(child.rest).to include("daemonize").and include("systemd")
    end
  end

  it "answers every nonsensical value with one line naming the option, exit 2, never a panic" do
    [%w[--timeout 1e400], %w[--timeout inf], %w[--timeout -3], %w[--write-timeout 1e400], %w[-t 0], %w[-t 8:2],
     %w[-p 65536], %w[--max-body 0], %w[--ssl-verify maybe]].each do |flag, value|
      child = spawn_child(lunar_cmd(flag, value, fixture("hello.ru")))
      out = child.rest
      expect(child.exit_status.exitstatus).to eq(2), "#{flag} #{value}: #{out}"
      expect(out.lines.size).to eq(1), "#{flag} #{value}: #{out}"
      expect(out).to include(value).and start_with("lunar: ")
      expect(out).not_to match(/panick|backtrace|\.rs:/)
    end
  end

  describe "an exception that escapes the app" do
    def raising_app(env_name, config = nil)
      in_dir("config.ru", "run ->(env) { raise ArgumentError, 'the app broke' }\n")
      args = ["-e", env_name, "-b", "tcp://127.0.0.1:0"]
      args += ["-C", in_dir("lunar.rb", config)] if config
      child = spawn_child(lunar_cmd(*args), chdir: dir)
      child.wait_for(single_boot)[3].to_i
    end

    it "goes to lowlevel_error_handler as Puma calls it (exception, env, status), and its answer is sent" do
      port = raising_app("production", <<~RUBY)
        lowlevel_error_handler do |error, env, status|
          [status, { "content-type" => "text/plain" }, ["reported \#{error.message} for \#{env['PATH_INFO']} (\#{status})"]]
        end
      RUBY
      response = body(port, "/orders")
      expect([response.code, response.body]).to eq(["500", "reported the app broke for /orders (500)"])
    end

    it "shows its message and backtrace in development, never in production" do
      development = body(raising_app("development"))
      expect(development.code).to eq("500")
      expect(development.body).to include("the app broke (ArgumentError)").and include("config.ru:1")
      production = body(raising_app("production"))
      expect(production.code).to eq("500")
      expect(production.body).not_to include("the app broke")
    end
  end

  describe "logs" do
    def boot_with_logs(*flags)
      log = File.join(dir, "lunar.log")
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--access-log", "--redirect-stdout", log, "--redirect-stderr", log,
                                    *flags, fixture("hello.ru")))
      [child, log]
    end

    def port_from(log, pattern)
      eventually(timeout: 20) { File.exist?(log) && File.read(log)[pattern] }
      File.read(log)[pattern, 1].to_i
    end

    [[], %w[-w 1]].each do |mode|
      it "reopens stdout_redirect's files on HUP (logrotate)#{' in cluster mode' unless mode.empty?}" do
        child, log = boot_with_logs(*mode)
        port = port_from(log, %r{listening on tcp://127\.0\.0\.1:(\d+)})
        body(port, "/before")
        eventually { File.read(log).include?("GET /before") }
        File.rename(log, "#{log}.1")
        child.signal("HUP")
        eventually { File.exist?(log) }
        body(port, "/after")
        eventually { File.read(log).include?("GET /after") }
        expect(File.read("#{log}.1")).not_to include("GET /after")
      end
    end

    it "writes an access log line with the bytes sent and the duration" do
      _child, log = boot_with_logs
      port = port_from(log, %r{listening on tcp://127\.0\.0\.1:(\d+)})
      size = body(port, "/sized").body.bytesize
      line = eventually { File.read(log).lines.find { |l| l.include?("GET /sized") } }
      expect(line).to match(%r{"GET /sized HTTP/1\.1" 200 #{size} \d+\.\d+$})
    end

    it "writes Ruby's and Rust's lines as one JSON object each with --log-format json" do
      in_dir("config.ru", <<~RUBY)
        TOPIC = Lunar::Topic.new("chat", redis: "redis://127.0.0.1:#{free_port}/0") # nothing listens there
        run ->(env) { TOPIC.publish("hello"); [200, {}, ["published"]] }
      RUBY
      child = spawn_child(lunar_cmd("--log-format", "json", "--async", "-b", "tcp://127.0.0.1:0"), chdir: dir)
      boot = JSON.parse(child.wait_for(/"message":"Lunar .*listening on/).string)
      expect(boot).to include("level" => "info", "pid" => child.pid)
      body(boot["message"][/:(\d+)\z/, 1].to_i)
      redis = JSON.parse(child.wait_for(/"message":"Redis .*cannot connect/).string) # from the Rust core
      expect(redis).to include("level" => "warn")
    end
  end

  describe "USR2: a hot restart on the same sockets" do
    it "re-executes a single process in place, refusing no connection" do
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", fixture("hello.ru")))
      _threads, pid, port = child.wait_for(single_boot).captures.map(&:to_i)
      hammer = Hammer.new(port)
      child.signal("USR2")
      child.wait_for(/Lunar restarting$/)
      expect(child.wait_for(single_boot).captures.map(&:to_i)).to eq([5, pid, port])
      eventually { hammer.ok.positive? }
      expect(hammer.stop.last).to eq(0)
    end

    it "re-executes a cluster's master, whose new workers serve the same socket" do
      child = spawn_child(lunar_cmd("-w", "2", "-b", "tcp://127.0.0.1:0", fixture("pid.ru")))
      port = child.wait_for(cluster_boot)[2].to_i
      before = body(port).body
      child.signal("USR2")
      child.wait_for(/Lunar cluster restarting$/)
      expect(child.wait_for(cluster_boot)[2].to_i).to eq(port)
      expect(body(port).body).not_to eq(before)
    end
  end
end
