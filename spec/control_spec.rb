# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"

# Puma's control app (--control-url / activate_control_app), /metrics, lunarctl, and
# workers that stop answering.
RSpec.describe "operating a running Lunar" do
  let(:dir) { scratch_dir("lunar-control") }
  let(:token) { "s3cret" }
  let(:single_keys) { %w[started_at backlog running pool_capacity max_threads requests_count] }
  let(:cluster_keys) { %w[started_at workers phase booted_workers old_workers worker_status] }
  let(:worker_keys) { %w[started_at pid index phase booted last_checkin last_status] }

  def control(url, path, token: self.token)
    query = token ? "?token=#{token}" : ""
    Net::HTTP.get_response(URI("http://#{url.delete_prefix('tcp://')}/#{path}#{query}"))
  end

  def lunarctl(*args)
    Open3.capture2e(RbConfig.ruby, File.join(ProcessHelpers::ROOT, "exe", "lunarctl"), *args)
  end

  # The official Prometheus client's parser (Debian's python3-prometheus-client): each
  # family's name and its samples, or the parser's error.
  def prometheus_families(text)
    script = "import sys, json; from prometheus_client.parser import text_string_to_metric_families as parse\n" \
             "print(json.dumps({f.name: [[s.labels, s.value] for s in f.samples] for f in parse(sys.stdin.read())}))"
    out, status = Open3.capture2e("/usr/bin/python3", "-c", script, stdin_data: text)
    expect(status.success?).to be(true), out
    JSON.parse(out)
  end

  # Whether process `pid` has gone or is a zombie. It may vanish between looking and reading.
  def gone_or_zombie?(pid)
    File.read("/proc/#{pid}/stat").split[2] == "Z"
  rescue Errno::ENOENT, Errno::ESRCH
    true
  end

  def boot(*args, fixture_name: "hello.ru")
    spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--control-url", "tcp://127.0.0.1:0", "--control-token", token,
                          *args, fixture(fixture_name)))
  end

  describe "in single mode" do
    it "serves Puma's control app: /stats with Puma's keys, 403 without the token, 404 for the unknown, /metrics" do
      child = boot
      port, control_url = child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+); control app on (tcp://[\d.:]+)}).captures
      3.times { Net::HTTP.get(URI("http://127.0.0.1:#{port}/")) }

      stats = JSON.parse(control(control_url, "stats").body)
      expect(stats.keys).to include(*single_keys, "connections", "async_pending", "parked_bodies")
      expect(stats["requests_count"]).to eq(3)
      expect(control(control_url, "stats", token: nil).code).to eq("403")
      expect(control(control_url, "stats", token: "wrong").body).to eq("Invalid auth token")
      expect(control(control_url, "reload", token: token).code).to eq("404")
      expect(JSON.parse(control(control_url, "gc-stats").body)).to include("count")
      expect(JSON.parse(control(control_url, "thread-backtraces").body).first).to include("name", "backtrace")

      families = prometheus_families(control(control_url, "metrics").body)
      expect(families.fetch("lunar_requests")).to eq([[{}, 3.0]]) # a counter: the family drops _total
      expect(families.fetch("lunar_max_threads")).to eq([[{}, 5.0]])
    end

    it "is what lunarctl asks, and lunarctl -P signals through the pid file" do
      pidfile = File.join(dir, "lunar.pid")
      child = boot("--pidfile", pidfile)
      control_url = child.wait_for(/control app on (tcp:\S+)/)[1]
      out, status = lunarctl("-C", control_url, "-T", token, "stats")
      expect(status.success?).to be(true), out
      first, json = out.split("\n", 2)
      expect(first).to eq("Command stats sent success")
      expect(JSON.parse(json).keys).to include(*single_keys)

      out, status = lunarctl("-C", control_url, "-T", "wrong", "stats")
      expect([status.exitstatus, out]).to eq([1, "lunarctl: stats failed: 403 Invalid auth token\n"])
      out, = lunarctl("-P", pidfile, "status")
      expect(out).to eq("Lunar is started\n")
      out, = lunarctl("-P", pidfile, "stop")
      expect(out).to eq("Command stop sent success\n")
      expect(child.exit_status.exitstatus).to eq(0)
    end

    it "adds Lunar's own keys: topics and their subscribers, the Redis link and what it dropped" do
      redis = RedisServer.instance.start
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--async", "--control-url", "tcp://127.0.0.1:0", "--control-token", token,
                                    fixture("redis_topic.ru")),
                          env: { "REDIS_URL" => redis.url, "TOPIC" => "stats-#{Process.pid}" })
      port, control_url = child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+); control app on (tcp://[\d.:]+)}).captures
      stream = TCPSocket.new("127.0.0.1", port)
      stream.write("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
      read_until(stream, /held by/)
      stats = JSON.parse(control(control_url, "stats").body)
      expect(stats).to include("topics" => 1, "topic_subscribers" => 1, "redis_links" => 1, "redis_links_up" => 1,
                               "redis_dropped_publishes" => 0, "websockets" => 0)
      expect(prometheus_families(control(control_url, "metrics").body).fetch("lunar_topic_subscribers")).to eq([[{}, 1.0]])
    ensure
      stream&.close
    end

    it "gives Lunar.stats in the app, as Puma.stats" do
      in_app = File.join(dir, "stats.ru")
      File.write(in_app, "run ->(env) { [200, { 'content-type' => 'application/json' }, [Lunar.stats]] }\n")
      child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", in_app))
      port = child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1]
      Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))
      stats = JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{port}/")))
      expect(stats).to include("requests_count" => 2, "max_threads" => 5)
    end
  end

  describe "in cluster mode" do
    it "serves Puma's cluster /stats (every worker's requests counted), /metrics by worker, and acts on /phased-restart and /stop" do
      socket = File.join(dir, "control.sock")
      child = spawn_child(lunar_cmd("-w", "2", "--worker-check-interval", "0.2", "-b", "tcp://127.0.0.1:0",
                                    "--control-url", "unix://#{socket}", "--control-token", token, fixture("pid.ru")))
      port = child.wait_for(%r{cluster of 2 workers.*listening on tcp://127\.0\.0\.1:(\d+)})[1]
      served = Array.new(10) { Net::HTTP.get(URI("http://127.0.0.1:#{port}/")) }

      stats = nil
      eventually(timeout: 5) do
        out, = lunarctl("-C", "unix://#{socket}", "-T", token, "stats")
        stats = JSON.parse(out.split("\n", 2).last)
        stats["worker_status"].sum { |w| w.dig("last_status", "requests_count") } == served.size
      end
      expect(stats.keys).to include(*cluster_keys)
      expect(stats).to include("workers" => 2, "booted_workers" => 2, "phase" => 0)
      expect(stats["worker_status"].first.keys).to include(*worker_keys)
      expect(served.uniq - stats["worker_status"].map { |w| w["pid"].to_s }).to be_empty # every answer came from a worker listed

      out, = lunarctl("-C", "unix://#{socket}", "-T", token, "metrics")
      families = prometheus_families(out.split("\n", 2).last)
      expect(families.fetch("lunar_requests").sum { |_labels, value| value }).to eq(served.size)
      expect(families.fetch("lunar_requests").map { |labels, _| labels["worker"] }).to contain_exactly("0", "1")
      expect(families.fetch("lunar_workers")).to eq([[{}, 2.0]])

      expect(lunarctl("-C", "unix://#{socket}", "-T", token, "phased-restart").first).to eq("Command phased-restart sent success\n")
      child.wait_for(/phased restart done/)
      expect(lunarctl("-C", "unix://#{socket}", "-T", token, "stop").first).to eq("Command stop sent success\n")
      expect(child.exit_status.exitstatus).to eq(0)
      expect(File.exist?(socket)).to be(false)
    end

    it "replaces a worker that stops checking in (SIGSTOP) within worker_timeout + 5 s" do
      child = spawn_child(lunar_cmd("-w", "2", "--worker-timeout", "2", "--worker-check-interval", "0.2",
                                    "-b", "tcp://127.0.0.1:0", fixture("pid.ru")))
      child.wait_for(/cluster of 2 workers/)
      stuck = Integer(child.lines.join[/worker 0 booted, pid (\d+)/, 1])
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      Process.kill("STOP", stuck)
      child.wait_for(/worker 0 \(pid #{stuck}\) did not check in within 2/, timeout: 10)
      child.wait_for(/worker 0 booted, pid (?!#{stuck})\d+/, timeout: 15)
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 2 + 5 + 2 # + the new worker's boot
      eventually(timeout: 10) { gone_or_zombie?(stuck) }
    end
  end
end
