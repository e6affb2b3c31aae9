# frozen_string_literal: true

require "spec_helper"

RSpec.describe "the lunar command" do
  let(:boot_line) do
    %r{Lunar \S+ \(ruby [\d.]+, rack [\d.]+\) threaded mode, 3 threads, pid \d+, up to \d+ connections \([^)]*\), listening on tcp://127\.0\.0\.1:(\d+)}
  end

  def start(*args)
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "-t", "3", *args))
    port = Integer(child.wait_for(boot_line)[1])
    [child, port]
  end

  it "serves config.ru, prints one boot line, and exits 0 on TERM" do
    child, port = start(fixture("hello.ru"))
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("hello from Lunar #{Lunar::VERSION}\n")
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end

  it "does the I/O on the app's thread with --io-threads 0, and says so" do
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "-t", "1", "--io-threads", "0", fixture("hello.ru")))
    port = Integer(child.wait_for(%r{threaded mode, 1 thread, doing the I/O \(inline\), pid \d+.*listening on tcp://127\.0\.0\.1:(\d+)})[1])
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("hello from Lunar #{Lunar::VERSION}\n")
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
  end

  %w[TERM QUIT].each do |signal|
    it "finishes an in-flight request on #{signal}, then exits 0 (as Thin)" do
      child, port = start(fixture("slow.ru"))
      inflight = Thread.new { Net::HTTP.get(URI("http://127.0.0.1:#{port}/slow")) }
      child.wait_for(%r{started /slow})
      child.signal(signal)
      child.wait_for(/stopping gracefully/)
      expect(inflight.value).to eq("done")
      expect(child.exit_status.exitstatus).to eq(0)
    end
  end

  it "stops at once on INT during a graceful stop, as the stopping line says" do
    child, port = start(fixture("slow.ru"), "--shutdown-timeout", "30")
    hold = TCPSocket.new("127.0.0.1", port)
    hold.write("GET /slow?20 HTTP/1.1\r\nHost: h\r\n\r\n")
    child.wait_for(%r{started /slow})
    child.signal("TERM")
    child.wait_for(/stopping gracefully.*INT to stop now/)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    child.signal("INT") # once: not the second INT that exits on the spot
    expect(child.exit_status(timeout: 10).exitstatus).to eq(0)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 5 # not the 20 s request, not the 30 s grace
    expect(read_to_eof(hold, within: 2)).not_to include("done")
  ensure
    hold&.close
  end

  it "stops at once on INT (as Thin): the in-flight request is cut, exit 0" do
    child, port = start(fixture("slow.ru"), "--shutdown-timeout", "30")
    hold = TCPSocket.new("127.0.0.1", port)
    hold.write("GET /slow?20 HTTP/1.1\r\nHost: h\r\n\r\n")
    child.wait_for(%r{started /slow})
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    child.signal("INT")
    expect(child.exit_status(timeout: 10).exitstatus).to eq(0)
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 5 # not the 20 s request, not the 30 s grace
    expect(read_to_eof(hold, within: 2)).not_to include("done") # cut: closed, unanswered
  ensure
    hold&.close
  end

  # What only the app can mend is said in the log, where its author looks: a client sees no
  # more than a response cut short (the native core's lines, so a child process's output).
  it "logs a body marked Transfer-Encoding: chunked that is not chunk-encoded, a stream short of its length, " \
     "a header it will not send, and a request over --max-body or --max-header-size (once a minute)" do
    dir = scratch_dir("lunar-cli")
    write_file(dir, "config.ru", <<~'RUBY')
      short = Struct.new(:parts) { def each(&) = parts.each(&) }.new(["abc"])
      run lambda { |env|
        case env["PATH_INFO"]
        when "/short" then [200, { "content-length" => "10" }, short]
        when "/header" then [200, { "x-split" => "a\r\nInjected: 1", "bad name" => "x", "content-length" => "2" }, ["ok"]]
        else [200, { "transfer-encoding" => "chunked" }, ["hello"]]
        end
      }
    RUBY
    child = spawn_child(lunar_cmd("--max-body", "100", "--max-header-size", "8192", "-b", "tcp://127.0.0.1:0", "config.ru"), chdir: dir)
    port = Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
    too_large = %r{lunar: POST /upload: request body over --max-body \(100 bytes\), answered 413}
    2.times { expect(status_of(raw(port, "POST /upload?k=v HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n#{'x' * 101}"))).to eq("413") }
    child.wait_for(too_large)
    expect(status_of(raw(port, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: #{'a' * 9000}\r\n\r\n"))).to eq("431")
    child.wait_for(/lunar: a request head over --max-header-size \(8192 bytes\) or over 100 header lines, answered 431/)
    expect(raw_until_close(port, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")).not_to include("hello")
    child.wait_for(/lunar: a body the app marked Transfer-Encoding: chunked is not chunk-encoded \(bad chunk size line\); its connection closes/)
    raw_until_close(port, "GET /short HTTP/1.1\r\nHost: h\r\n\r\n")
    child.wait_for(/lunar: a streamed response ended 7 bytes short of its Content-Length; its connection closes/)
    answer = raw_until_close(port, "GET /header HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    expect(answer).to end_with("ok")
    expect(answer).not_to include("Injected", "X-Split")
    child.wait_for(/lunar: response header "x-split" not sent: its value holds CR, NUL or another control character/)
    child.wait_for(/lunar: response header "bad name" not sent: its name is not a token/)
    expect(child.lines.grep(too_large).size).to eq(1) # the second 413 came after it, within the minute
  end

  # As Puma: a port that accepts can answer, and an app that fails to load never opens one.
  it "loads the app before it opens its port" do
    dir = scratch_dir("lunar-cli")
    write_file(dir, "config.ru", <<~RUBY)
      $stdout.puts "loading"
      $stdout.flush
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
      sleep 0.02 until File.exist?("go") || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      run ->(_env) { [200, {}, ["loaded"]] }
    RUBY
    port = TCPServer.open("127.0.0.1", 0) { |probe| probe.addr[1] }
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:#{port}", "config.ru"), chdir: dir)
    child.wait_for(/^loading$/)
    expect(refused?(port)).to be(true) # not listening while the app loads
    File.write(File.join(dir, "go"), "")
    child.wait_for(/listening on/)
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to eq("loaded")
  end

  it "keeps answering when the access log cannot be written, and says so once" do
    child = spawn_child(lunar_cmd("-b", "tcp://127.0.0.1:0", "--access-log", "/dev/full", fixture("hello.ru"))) # every write: ENOSPC
    port = Integer(child.wait_for(%r{listening on tcp://127\.0\.0\.1:(\d+)})[1])
    3.times { expect(Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/")).code).to eq("200") }
    child.wait_for(%r{lunar: access log /dev/full: cannot write \(Errno::ENOSPC})
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
    expect(child.rest.scan("cannot write").size).to eq(1)
  end

  it "writes a pid file and an access log, and honours --port/--address" do
    dir = scratch_dir("lunar-cli")
    pid_file = File.join(dir, "lunar.pid")
    log = File.join(dir, "access.log")
    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    child = spawn_child(lunar_cmd("-a", "127.0.0.1", "-p", port.to_s, "-t", "3", "--pid", pid_file,
                                  "--access-log", log, fixture("hello.ru")))
    child.wait_for(%r{listening on tcp://127\.0\.0\.1:#{port}})
    expect(File.read(pid_file).to_i).to eq(child.pid)
    Net::HTTP.get(URI("http://127.0.0.1:#{port}/logged?x=1"))
    eventually { File.read(log).include?("GET /logged?x=1 HTTP/1.1\" 200") }
    expect(File.read(log)).to match(%r{\A127\.0\.0\.1 - - \[[^\]]+\] "GET /logged\?x=1 HTTP/1\.1" 200 \d+ \d+\.\d{4}$})
    child.signal("TERM")
    expect(child.exit_status.exitstatus).to eq(0)
    expect(File.exist?(pid_file)).to be(false)
  end

  it "prints --version and --help" do
    expect(`#{lunar_cmd("-v").join(" ")}`).to eq("Lunar #{Lunar::VERSION}\n")
    expect(`#{lunar_cmd("-h").join(" ")}`).to include("--max-body", "--shutdown-timeout", "--bind")
  end

  it "rejects unknown flags and unreadable config files with one line and exit code 2" do
    child = spawn_child(lunar_cmd("--no-such-flag"))
    expect(child.exit_status.exitstatus).to eq(2)
    expect(child.rest.lines.size).to eq(1)
    child = spawn_child(lunar_cmd("/nonexistent/config.ru"))
    expect(child.exit_status.exitstatus).to eq(2)
    expect(child.rest).to eq("lunar: cannot read /nonexistent/config.ru (see lunar --help)\n")
  end
end
