# frozen_string_literal: true

require "rbconfig"
require "timeout"
require "fileutils"

# Running Lunar (or rackup, rails, a Sinatra script) as a child process and waiting for the
# line that says it listens.
module ProcessHelpers
  ROOT = File.expand_path("../..", __dir__)
  LIB = File.join(ROOT, "lib")

  Child = Struct.new(:pid, :out, :lines) do
    def wait_for(pattern, timeout: 20)
      Timeout.timeout(timeout) do
        loop do
          hit = lines.find { |l| l.match?(pattern) }
          return hit.match(pattern) if hit

          line = out.gets or raise "process ended before printing #{pattern.inspect}:\n#{lines.join}"
          lines << line
        end
      end
    end

    def rest
      lines << out.read.to_s
      lines.join
    end

    def signal(name)
      Process.kill(name, pid)
    end

    def exit_status(timeout: 15)
      Timeout.timeout(timeout) { Process.wait2(pid).last }
    end
  end

  # Spawns `argv` with lib/ on RUBYLIB, stdout+stderr merged into one pipe. `spawn`: more
  # Process.spawn options (`{ 3 => io }` to pass a descriptor as systemd passes sockets,
  # `rlimit_nofile: [soft, hard]`).
  def spawn_child(argv, env: {}, chdir: ROOT, spawn: {})
    rd, wr = IO.pipe
    env = { "RUBYLIB" => [LIB, ENV.fetch("RUBYLIB", nil)].compact.join(":") }.merge(env)
    pid = Process.spawn(env, *argv, out: wr, err: wr, in: File::NULL, chdir: chdir,
                                    # tests of Ctrl-C need SIGINT handled, not ignored
                                    pgroup: true, **spawn)
    wr.close
    child = Child.new(pid, rd, [])
    (@children ||= []) << child
    child
  end

  def lunar_cmd(*args)
    [RbConfig.ruby, File.join(ROOT, "exe", "lunar"), *args]
  end

  # Writes `text` to `path` under `dir` (directories made as needed); returns the full path.
  def write_file(dir, path, text)
    File.join(dir, path).tap do |full|
      FileUtils.mkdir_p(File.dirname(full))
      File.write(full, text)
    end
  end

  def fixture(name)
    File.join(ROOT, "spec", "fixtures", name)
  end

  def self.included(base)
    base.after do
      (@children || []).each do |c|
        Process.kill("KILL", -c.pid) # its process group: a cluster's workers too
        Process.wait(c.pid)
      rescue Errno::ESRCH, Errno::ECHILD
        nil
      end
    end
  end
end
