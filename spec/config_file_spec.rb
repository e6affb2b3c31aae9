# frozen_string_literal: true

require "spec_helper"

# `lunar -C FILE` and config/lunar.rb: Puma-style settings under the command line's flags.
RSpec.describe "the config file" do
  let(:boot_line) { %r{threaded mode, (\d+) threads, pid \d+, up to (\d+) connections .*listening on tcp://127\.0\.0\.1:(\d+)} }

  let(:dir) { scratch_dir("lunar-config") }

  def write(path, text) = write_file(dir, path, text)

  it "sets the options, and flags on the command line win over it" do
    config = write("lunar.rb", <<~RUBY)
      bind "tcp://127.0.0.1:0"
      threads 0, 3
      max_conns 77
      rackup #{fixture('hello.ru').inspect}
    RUBY
    child = spawn_child(lunar_cmd("-C", config, "-t", "4"))
    threads, max_conns, port = child.wait_for(boot_line).captures.map(&:to_i)
    expect([threads, max_conns]).to eq([4, 77])
    expect(Net::HTTP.get(URI("http://127.0.0.1:#{port}/"))).to start_with("hello from Lunar")
  end

  it "is read from config/lunar.rb when present" do
    write("config/lunar.rb", "bind 'tcp://127.0.0.1:0'\nthreads 2\n")
    FileUtils.cp(fixture("hello.ru"), File.join(dir, "config.ru"))
    child = spawn_child(lunar_cmd, chdir: dir)
    expect(child.wait_for(boot_line)[1]).to eq("2")
  end

  it "names the file and the line of an unknown option, and exits 2" do
    config = write("lunar.rb", "threads 2\nworkerz 4\n")
    child = spawn_child(lunar_cmd("-C", config, fixture("hello.ru")))
    expect(child.exit_status.exitstatus).to eq(2)
    expect(child.rest).to include("lunar: #{config}:2: unknown option `workerz'")
  end

  it "names the line of a bad value" do
    config = write("lunar.rb", "timeout 'soon'\n")
    child = spawn_child(lunar_cmd("-C", config, fixture("hello.ru")))
    expect(child.exit_status.exitstatus).to eq(2)
    expect(child.rest).to match(/lunar: #{Regexp.escape(config)}:1: timeout: "soon" is not a number of seconds/)
  end
end
