#!/usr/bin/perl
# rewrite.pl IN OUT — a kernels/*.cu file as C++ for the CUDA emulation (cuda_emu.h):
#   kernel<<<grid, block[, shared[, stream]]>>>(args)  ->  emu::launch(emu::make_config(...), kernel, args)
#   extern __shared__ [__align__(n)] T name[];         ->  T *name = static_cast<T *>(emu::dynamic_shared());
# and a #line so compiler messages point at the .cu file.
use strict;
use warnings;
my ($in, $out) = @ARGV;
die "usage: rewrite.pl IN OUT\n" unless defined $out;
open(my $fh, '<', $in) or die "$in: $!\n";
local $/;
my $src = <$fh>;
close $fh;
my $launches = ($src =~ s/([A-Za-z_][\w:]*(?:<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(/emu::launch(emu::make_config($2), $1, /gs);
$src =~ s/extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w ]*?)\s+(\w+)\s*\[\s*\]\s*;/$1 *$2 = static_cast<$1 *>(emu::dynamic_shared());/g;
die "$in: a <<< >>> launch was not rewritten\n" if $src =~ /<<<|>>>/;
open(my $o, '>', $out) or die "$out: $!\n";
print $o "#line 1 \"$in\"\n", $src;
close $o;
